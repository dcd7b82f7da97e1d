from sftphook.accounts import passwords
from tests.cli.conftest import error_line, table_rows

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINBcSNsV104DUxwAFnOmJb5QZFdeoZ8Ly7UrFekl8jrW test@k1"


async def _user(app, name):
    org = await app.accounts.resolve_organization(None)
    return await app.accounts.get_user(org.id, name)


async def test_user_lifecycle_through_the_command_line(cli, app):
    added = cli(
        "users", "add", "acme", "--password-stdin", "--home", "partners/acme",
        "--permissions", "read,list", input="first-password\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "acme" in added.stdout and "/partners/acme" in added.stdout
    [row] = table_rows(cli("users", "list"))
    assert row["username"] == "acme" and row["enabled"] == "yes"
    assert row["home"] == "/partners/acme" and row["permissions"] == "read,list"
    assert row["login"] == "password"

    changed = cli("users", "passwd", "acme", "--password-stdin", input="second-password\n")
    assert changed.returncode == 0, changed.stderr
    user = await _user(app, "acme")
    assert passwords.verify_password(user.password_hash, "second-password")

    assert cli("users", "disable", "acme").returncode == 0
    assert (await _user(app, "acme")).enabled is False
    assert cli("users", "enable", "acme").returncode == 0
    assert (await _user(app, "acme")).enabled is True

    assert cli("users", "remove", "acme").returncode == 0
    assert await app.accounts.list_users(user.organization_id) == []
    gone = cli("users", "remove", "acme")
    assert gone.returncode == 1 and "acme" in error_line(gone)


async def test_user_with_key_files_only(cli, app, tmp_path):
    key_file = tmp_path / "id.pub"
    key_file.write_text(KEY + "\n")
    added = cli("users", "add", "keyed", "--key", str(key_file))
    assert added.returncode == 0, added.stderr
    user = await _user(app, "keyed")
    assert user.public_keys == KEY and user.password_hash is None


def test_bad_input_is_one_red_line_exit_1_and_changes_nothing(cli, tmp_path):
    not_a_key = tmp_path / "bad.pub"
    not_a_key.write_text("ssh-ed25519 garbage\n")
    cases = [
        (("users", "add", "../etc", "--password-stdin"), "good-password\n", "username"),
        (("users", "add", "empty", "--password-stdin"), "\n", "password"),
        (("users", "add", "perm", "--permissions", "root"), "", "root"),
        (("users", "add", "badkey", "--key", str(not_a_key)), "", "public key"),
        (("users", "add", "nokey", "--key", str(tmp_path / "missing.pub")), "", "missing.pub"),
        (("users", "add", "other", "--org", "nope", "--password-stdin"), "good-password\n", "nope"),
        (("users", "disable", "ghost"), "", "ghost"),
    ]
    for args, stdin, mention in cases:
        result = cli(*args, input=stdin)
        assert result.returncode == 1, (args, result.stderr)
        assert mention in error_line(result), (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert table_rows(cli("users", "list")) == []


async def test_duplicate_user_is_refused_and_the_first_kept(cli, app):
    assert cli("users", "add", "dup", "--password-stdin", input="password-one\n").returncode == 0
    again = cli("users", "add", "dup", "--password-stdin", "--home", "x", input="password-two\n")
    assert again.returncode == 1 and "already exists" in error_line(again)
    assert (await _user(app, "dup")).home == "/"


async def test_without_a_terminal_a_password_must_be_piped(cli, app):
    result = cli("users", "add", "nopass")
    assert result.returncode == 2
    assert "--password-stdin" in error_line(result)
    usage = cli("users", "add")
    assert usage.returncode == 2 and "Missing argument" in usage.stderr
    org = await app.accounts.resolve_organization(None)
    assert await app.accounts.list_users(org.id) == []


async def test_on_a_terminal_the_password_is_asked_twice_hidden_and_lists_are_tables(terminal, app):
    term = terminal("users", "add", "typed")
    term.expect("Password: ")
    term.send("typed-password")
    term.expect("Repeat for confirmation: ")
    term.send("typed-password")
    assert term.wait() == 0, term.output
    assert "typed-password" not in term.output.decode()  # not echoed
    user = await _user(app, "typed")
    assert passwords.verify_password(user.password_hash, "typed-password")

    listing = terminal("users", "list")
    assert listing.wait() == 0
    text = listing.output.decode()
    assert "typed" in text and "┃" in text and "\t" not in text


def test_an_invalid_username_is_refused_before_the_password_is_asked(terminal):
    """As a bad --home or --permissions already was: a typo should not cost typing a password
    twice."""
    term = terminal("users", "add", "bad name")
    output = term.expect("error:")
    assert term.wait() == 1
    assert "username 'bad name' is not valid" in term.output.decode()
    assert "Password" not in output


def test_passwd_of_an_unknown_user_is_refused_before_the_password_is_asked(terminal):
    term = terminal("users", "passwd", "ghost")
    output = term.expect("error:")
    assert term.wait() == 1
    assert "no user named 'ghost'" in term.output.decode()
    assert "Password" not in output
