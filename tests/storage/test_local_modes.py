"""Modes on local disk, as a server that does not run as root meets them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import require_binary

_SCRIPT = """
import os, stat, sys
from pathlib import Path
from sftphook.storage.local import LocalStorage

root = Path(sys.argv[1])
storage = LocalStorage(root, "org")
org = root / "org"
(org / "f").write_text("x")
os.chmod(org / "f", 0o200)
(org / "d").mkdir()
os.chmod(org / "d", 0)
try:
    (org / "f").read_text()
    print("readable: the test means nothing here")
except PermissionError:
    pass
storage.setstat("/f", mode=0o644)
storage.setstat("/d", mode=0o755)
print(oct(stat.S_IMODE((org / "f").stat().st_mode)), oct(stat.S_IMODE((org / "d").stat().st_mode)))
"""


def test_a_mode_that_forbids_reading_can_be_changed_back(tmp_path: Path) -> None:
    # `chmod 200 file` or `chmod 000 dir` over SFTP, then the mode back: the server needs no
    # read permission to set a mode. As root, the test drops the capabilities that let root
    # read anything, to be checked as the server's own user would be.
    argv = [sys.executable, "-c", _SCRIPT, str(tmp_path)]
    if os.geteuid() == 0:
        caps = "-dac_override,-dac_read_search"
        argv = [require_binary("setpriv"), f"--bounding-set={caps}", f"--inh-caps={caps}", *argv]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0o644", "0o755"], result.stdout
