"""Who produced a document, proven by an SSH signature rather than a checksum anyone recomputes.

An auditor signs a verdict (``invoke audit --sign KEY``), a submitter a run's manifest
(``invoke sign RUN --key KEY``): OpenSSH's SSHSIG (``ssh-keygen -Y sign``) over the
canonical JSON of the document without its ``sha256`` and ``signature`` fields, in a namespace
per kind of document, embedded as the document's ``signature``. The results store verifies
it against its trust file, an OpenSSH ``allowed_signers`` file (``invoke store trust FILE``)
as git verifies signed commits: ``ssh-keygen -Y find-principals`` names the principal the key
belongs to, ``ssh-keygen -Y verify`` checks the signature for that principal and namespace.
docs/security.md says why this scheme.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.documents import Document
from bench.errors import UserError, cut
from bench.jsonio import HASH_FIELD, seal

FIELD = "signature"
FORMAT = "sshsig"
NAMESPACES = {"audit": "accel-testbed-verdict", "manifest": "accel-testbed-manifest"}
TOOL_TIMEOUT_S = 30.0
MAX_TRUST_BYTES = 1 << 20
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
             "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com",
             "sk-ecdsa-sha2-nistp256@openssh.com")
SSH_KEYGEN_FIX = ("Install OpenSSH's client tools (8.2 or later: `apt-get install "
                  "openssh-client`), which provide `ssh-keygen -Y`.")

VERIFIED, UNVERIFIED, UNSIGNED = "verified", "unverified", "unsigned"


def signed_bytes(doc: Document) -> bytes:
    """What a signature covers: canonical JSON without the seal and the signature."""
    body = {k: v for k, v in doc.items() if k not in (HASH_FIELD, FIELD)}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _ssh_keygen() -> str:
    tool = shutil.which("ssh-keygen")
    if tool is None:
        raise UserError("`ssh-keygen` is not on PATH: signatures cannot be made or checked.",
                        SSH_KEYGEN_FIX)
    return tool


def _run(args: list[str], data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    try:
        # stdin stays the caller's unless there is a message: a passphrase is typed there
        return subprocess.run([_ssh_keygen(), *args], input=data, capture_output=True,
                              timeout=TOOL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise UserError(f"`ssh-keygen {' '.join(args[:2])}` did not answer within "
                        f"{TOOL_TIMEOUT_S:g} s.", "Check the key (a hardware key waits for a "
                        "touch) and try again.") from exc


def _said(proc: subprocess.CompletedProcess[bytes]) -> str:
    text = (proc.stderr or proc.stdout or b"").decode("utf-8", "replace").strip()
    return cut(" ".join(text.split()), 300) or f"exit code {proc.returncode}"


def check_key(key: Path) -> Path:
    """A signing key that exists (a private key, or a public key whose private half an
    ssh-agent holds): checked before the work whose result it will sign."""
    key = Path(key).expanduser()
    if not key.is_file():
        raise UserError(f"Signing key {key} does not exist (or is not a file).",
                        "Name your SSH private key, e.g. --sign ~/.ssh/id_ed25519 (or its .pub "
                        "when ssh-agent holds the key).")
    if not os.access(key, os.R_OK):
        raise UserError(f"Signing key {key} cannot be read.", "Check its permissions.")
    _ssh_keygen()
    return key


def sign_document(doc: Document, key: Path, kind: str) -> Document:
    """``doc`` with its ``signature`` (made with ``key``) and, when it carries one, its seal
    made again over the signed document."""
    namespace = NAMESPACES[kind]
    key = check_key(key)
    with tempfile.TemporaryDirectory(prefix="testbed-sign-") as tmp:
        # The message from a file, not stdin: a key with a passphrase asks for it on the
        # terminal, or reads stdin when there is none.
        message = Path(tmp, "document")
        message.write_bytes(signed_bytes(doc))
        proc = _run(["-Y", "sign", "-f", str(key), "-n", namespace, str(message)])
        sig = Path(f"{message}.sig")
        armored = sig.read_text(encoding="ascii", errors="replace") if sig.is_file() else ""
    if proc.returncode != 0 or "BEGIN SSH SIGNATURE" not in armored:
        raise UserError(f"ssh-keygen could not sign with {key}: {_said(proc)}.",
                        "Use an SSH private key you can unlock (or load it into ssh-agent and "
                        "name its .pub file).")
    signed = {k: v for k, v in doc.items() if k != FIELD}
    signed[FIELD] = {"format": FORMAT, "namespace": namespace, "armored": armored}
    return seal(signed) if HASH_FIELD in doc else signed


def sign_file(path: Path, key: Path) -> tuple[Path, str]:
    """Sign a verdict or manifest file in place (a run directory: its manifest); returns the
    file and its kind. The file is read as any submitted document is, and must be valid."""
    from bench.ids import MANIFEST_FILE
    from bench.jsonio import atomic_write_json
    from bench.validate import validate_file

    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_FILE
    report = validate_file(path)
    if not report.ok:
        raise UserError(f"{path} is not a valid document: {report.problems[0]}.",
                        "Sign a verdict.json or manifest.json as written.")
    if report.schema not in NAMESPACES:
        raise UserError(f"{path} is a {report.schema} document: only verdicts and manifests "
                        "are signed (a manifest lists its results by sha256).",
                        "Sign the run's manifest.json.")
    signed = sign_document(report.doc, key, report.schema)
    atomic_write_json(path, signed)
    return path, report.schema


# -- the trust file -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Signer:
    principals: tuple[str, ...]
    key_type: str
    line: int


_TOKEN = re.compile(r'(?:[^\s"]|"[^"]*")+')


def parse_allowed_signers(text: str, where: str) -> list[Signer]:
    """The signers of an OpenSSH ``allowed_signers`` file (``man ssh-keygen``, ALLOWED SIGNERS):
    ``principals [options] keytype base64-key [comment]`` per line. A line that is not that is
    an error naming the line (ssh-keygen would skip it silently)."""
    signers = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tokens = _TOKEN.findall(line)
        at = next((i for i, tok in enumerate(tokens) if tok in KEY_TYPES), None)
        problem = None
        if at is None or at == 0 or at > 2 or at + 1 >= len(tokens):
            problem = ("not 'principals [options] keytype key': the key type must be one of "
                       + ", ".join(KEY_TYPES))
        else:
            try:
                blob = base64.b64decode(tokens[at + 1], validate=True)
            except ValueError:
                blob = b""
            name = tokens[at].encode()
            if blob[4:4 + len(name)] != name:
                problem = f"its {tokens[at]} key is not a base64 OpenSSH public key"
        if problem is not None:
            raise UserError(f"{where}, line {number}: {cut(line, 120)!r} is {problem}.",
                            "Write one line per signer as git's gpg.ssh.allowedSignersFile: "
                            "`alice@lab.example ssh-ed25519 AAAA...` (the .pub file with the "
                            "principal in front).")
        signers.append(Signer(tuple(tokens[0].split(",")), tokens[at], number))
    return signers


def read_trust_file(path: Path) -> tuple[str, list[Signer]]:
    from bench.jsonio import UnreadableDocument, read_document_bytes

    try:
        data = read_document_bytes(Path(path), limit=MAX_TRUST_BYTES)
    except UnreadableDocument as exc:
        raise UserError(f"Trust file {path}: {exc}.",
                        "Name an allowed_signers file (a regular file).") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"Trust file {path} is not UTF-8 text.",
                        "Name an allowed_signers file.") from exc
    signers = parse_allowed_signers(text, f"Trust file {path}")
    if not signers:
        raise UserError(f"Trust file {path} names no signer.",
                        "Add a line `principal ssh-ed25519 AAAA...` per trusted key.")
    return text, signers


# -- verifying ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verification:
    status: str  # verified, unverified (signed, but not by a trusted key, or broken), unsigned
    principal: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == VERIFIED


def verify_document(doc: Document, kind: str, trust: str | None) -> Verification:
    """Whether ``doc`` carries a signature of ``kind``'s namespace by a key ``trust`` (the text
    of an allowed_signers file) lists, and whose. Never raises for a bad signature: it is an
    unverified claim with the reason."""
    sig = doc.get(FIELD) if isinstance(doc, dict) else None
    if sig is None:
        return Verification(UNSIGNED, reason="not signed")
    namespace = NAMESPACES[kind]
    if not isinstance(sig, dict) or sig.get("format") != FORMAT or \
            sig.get("namespace") != namespace or not isinstance(sig.get("armored"), str):
        return Verification(UNVERIFIED, reason=f"not an SSH signature in the {namespace} "
                                               "namespace")
    if not trust:
        return Verification(UNVERIFIED, reason="the store has no trust file (invoke store "
                                               "trust FILE)")
    try:
        message = signed_bytes(doc)
        with tempfile.TemporaryDirectory(prefix="testbed-verify-") as tmp:
            allowed = Path(tmp, "allowed_signers")
            allowed.write_text(trust, encoding="utf-8")
            signature = Path(tmp, "document.sig")
            signature.write_text(sig["armored"], encoding="ascii", errors="replace")
            found = _run(["-Y", "find-principals", "-s", str(signature), "-f", str(allowed)])
            principals = found.stdout.decode("utf-8", "replace").split()
            if found.returncode != 0 or not principals:
                return Verification(UNVERIFIED, reason="signed by a key the trust file does "
                                                       "not list")
            for principal in principals:
                proc = _run(["-Y", "verify", "-f", str(allowed), "-I", principal, "-n",
                             namespace, "-s", str(signature)], message)
                if proc.returncode == 0:
                    return Verification(VERIFIED, principal=principal)
            return Verification(UNVERIFIED, reason=f"the signature does not verify: "
                                                   f"{_said(proc)}")
    except UserError as exc:
        return Verification(UNVERIFIED, reason=exc.what)
    except (ValueError, TypeError, OSError) as exc:
        return Verification(UNVERIFIED, reason=f"cannot be checked: {exc}")
