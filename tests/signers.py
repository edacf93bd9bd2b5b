"""SSH keys for the tests of signed verdicts and manifests: real keys made by ``ssh-keygen``
(OpenSSH, as a user has them), and the ``allowed_signers`` line a trust file holds for each."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Signer:
    principal: str
    key: Path  # the private key (no passphrase)

    @property
    def allowed(self) -> str:
        """This key's line in an allowed_signers file."""
        kind, blob = Path(f"{self.key}.pub").read_text().split()[:2]
        return f"{self.principal} {kind} {blob}\n"


def make_signer(directory: Path, principal: str) -> Signer:
    if shutil.which("ssh-keygen") is None:
        from tests.conftest import skip_or_fail

        skip_or_fail("no ssh-keygen (OpenSSH): scripts/system-deps.sh installs openssh-client")
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / principal.replace("@", "_at_")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f",
                    str(key)], check=True, capture_output=True)
    return Signer(principal, key)


def trust_file(path: Path, *signers: Signer) -> Path:
    path.write_text("# who may sign verdicts and manifests\n"
                    + "".join(s.allowed for s in signers))
    return path
