"""What the audit records: one ``Check`` per thing it verified, and how they add up."""

from __future__ import annotations

from dataclasses import dataclass

from bench.documents import CheckRecord

INTEGRITY, IMAGE, ANTI_GAMING, RERUN = "integrity", "image", "anti_gaming", "rerun"
CATEGORIES = (INTEGRITY, IMAGE, ANTI_GAMING, RERUN)


@dataclass(frozen=True)
class Check:
    id: str  # what was checked: schema, sha256, manifest_listing, image_digest, caching, ...
    category: str  # one of CATEGORIES
    subject: str  # the file, entry or image it was checked on
    status: str  # pass, fail or skipped (skipped says why and never passes a verdict alone)
    message: str

    def as_dict(self) -> CheckRecord:
        return {"id": self.id, "category": self.category, "subject": self.subject,
                "status": self.status, "message": self.message}


def passed(id_: str, category: str, subject: str, message: str) -> Check:
    return Check(id_, category, subject, "pass", message)


def failed(id_: str, category: str, subject: str, message: str) -> Check:
    return Check(id_, category, subject, "fail", message)


def skipped(id_: str, category: str, subject: str, message: str) -> Check:
    return Check(id_, category, subject, "skipped", message)


def any_failed(checks: list[Check]) -> bool:
    return any(c.status == "fail" for c in checks)
