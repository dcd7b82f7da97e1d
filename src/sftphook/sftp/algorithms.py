"""The SSH algorithms an operator may choose (`sftp.ciphers`, `sftp.kex_algorithms`, …): what
asyncssh supports, and how a chosen list of signature algorithms is held to.

asyncssh takes `signature_algs` only as what the server announces in `server-sig-algs`: its
host keys still sign with every algorithm they can, and a client key's signature is checked
with whatever algorithm the client picked. So the SFTP front narrows both itself:
`host_keys_signing_with` when it builds the server's options, `limit_signatures` when it
accepts a client key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import asyncssh
from asyncssh.encryption import get_encryption_algs
from asyncssh.kex import get_kex_algs
from asyncssh.mac import get_mac_algs
from asyncssh.public_key import get_public_key_algs

from sftphook.errors import InvalidConfiguration

# Setting name: (what asyncssh calls the kind, its algorithms).
_KINDS: dict[str, tuple[str, Callable[[], list[bytes]]]] = {
    "ciphers": ("encryption", get_encryption_algs),
    "kex_algorithms": ("key exchange", get_kex_algs),
    "mac_algorithms": ("MAC", get_mac_algs),
    "signature_algorithms": ("signature", get_public_key_algs),
}


def supported(setting: str) -> list[str]:
    """The algorithms asyncssh supports for `setting`, in its order of preference. Key
    exchanges over GSS-API (`gss-…`) are left out: they need Kerberos, which sftphook does not
    set up."""
    _, algorithms = _KINDS[setting]
    names = [alg.decode("ascii") for alg in algorithms()]
    return [name for name in names if not name.startswith("gss-")]


def check(setting: str, names: list[str]) -> list[str]:
    """`names` if asyncssh supports every one, else a ValueError that names the unknown ones
    and lists the valid ones."""
    valid = supported(setting)
    unknown = [name for name in names if name not in valid]
    if unknown:
        kind, _ = _KINDS[setting]
        raise ValueError(
            f"unknown {kind} algorithm{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(n) for n in unknown)}; asyncssh {asyncssh.__version__} supports "
            f"{', '.join(valid)}"
        )
    return names


def host_keys_signing_with(
    keys: Sequence[asyncssh.SSHKey], signature_algorithms: Sequence[str]
) -> list[asyncssh.SSHKeyPair]:
    """The host keys, each offered only with the signature algorithms of the list (an RSA key
    signs with `rsa-sha2-256`, `rsa-sha2-512` and SHA-1 `ssh-rsa`); a key left with none is
    not offered. Raises InvalidConfiguration when no key is left."""
    allowed = {name.encode("ascii") for name in signature_algorithms}
    pairs = []
    # What the keys can sign with, for the error: asyncssh's order, each name once.
    possible: dict[str, None] = {}
    for pair in asyncssh.load_keypairs(list(keys)):
        possible.update(dict.fromkeys(alg.decode("ascii") for alg in pair.host_key_algorithms))
        pair.host_key_algorithms = [alg for alg in pair.host_key_algorithms if alg in allowed]
        if pair.host_key_algorithms:
            pairs.append(pair)
    if not pairs:
        types = [key.get_algorithm() for key in keys]
        raise InvalidConfiguration(
            f"sftp.signature_algorithms: no host key can sign with any of "
            f"{list(signature_algorithms)}: the host keys are {_and(types)}, which sign with "
            f"{', '.join(possible)}; add one of those to the list, or leave it empty"
        )
    return pairs


def _and(names: Sequence[str]) -> str:
    return " and ".join(filter(None, [", ".join(names[:-1]), *names[-1:]]))


def limit_signatures(key: asyncssh.SSHKey, signature_algorithms: Sequence[str]) -> None:
    """Make an accepted client key verify only signatures made with the list's algorithms
    (asyncssh verifies the login's signature with this very key object next)."""
    allowed = {name.encode("ascii") for name in signature_algorithms}
    key.all_sig_algorithms = {alg for alg in key.all_sig_algorithms if alg in allowed}
