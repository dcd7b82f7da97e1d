// Checks X-Hub-Signature-256 values with @octokit/webhooks-methods, a verifier we did not write.
// Reads a JSON list of {secret, body_base64, signature} on stdin and prints a JSON list of
// booleans, one per case, in the same order.
import { verify } from "@octokit/webhooks-methods";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = [];
for (const item of JSON.parse(input)) {
  const body = Buffer.from(item.body_base64, "base64").toString("utf8");
  results.push(await verify(item.secret, body, item.signature));
}
process.stdout.write(JSON.stringify(results) + "\n");
