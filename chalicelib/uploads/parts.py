"""The part rules of a multipart upload, as R2 has them (stricter than S3's).

R2: every part but the last has one size, between 5 MiB and 5 GiB; the last is no larger; at most
10,000 parts (developers.cloudflare.com/r2/objects/multipart-objects). The server chooses the
part size when the upload begins and keeps it on the job, so every client, and every resumption,
cuts the file the same way, and completing can check each stored part against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from chalicelib.domain import MAX_PARTS, MIB
from chalicelib.processing.ports import StoredPart

SIGN_BATCH_MAX = 100  # part URLs one request may ask for


@dataclass(frozen=True)
class Plan:
    """How a file is cut: `count` parts of `part_size` bytes, the last one possibly shorter."""

    size: int
    part_size: int

    @property
    def count(self) -> int:
        return -(-self.size // self.part_size)

    def size_of(self, number: int) -> int:
        """The exact size of part `number` (1-based)."""
        if number < self.count:
            return self.part_size
        return self.size - (self.count - 1) * self.part_size


def part_size_for(size: int, preferred: int) -> int:
    """`preferred`, or the smallest whole number of MiB that keeps the file within 10,000 parts."""
    needed = -(-size // MAX_PARTS)
    return max(preferred, -(-needed // MIB) * MIB)


@dataclass(frozen=True)
class Multipart:
    """A new multipart upload, as the client is told about it."""

    plan: Plan
    expires_at: datetime


@dataclass(frozen=True)
class Check:
    """What is wrong with the parts R2 holds, against the plan (nothing: they make the file)."""

    missing: list[int] = field(default_factory=list)
    wrong_size: list[StoredPart] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.wrong_size

    def message(self, plan: Plan) -> str:
        """For a person: which parts to send (again), at most a handful named."""
        problems = []
        if self.missing:
            problems.append(f"{_count(len(self.missing), 'part')} missing ({_some(self.missing)})")
        for part in self.wrong_size[:3]:
            problems.append(
                f"part {part.number} has {part.size} bytes where {plan.size_of(part.number)} belong"
            )
        if len(self.wrong_size) > 3:
            problems.append(f"{len(self.wrong_size) - 3} more parts of the wrong size")
        return (
            f"The upload does not add up to the file's {plan.size} bytes in {plan.count} parts: "
            + "; ".join(problems)
            + ". Upload those parts again, then complete the upload."
        )


def check(parts: Sequence[StoredPart], plan: Plan) -> Check:
    """Every part 1..count present with exactly its planned size, and no part beyond them."""
    stored = {p.number: p for p in parts}
    missing = [n for n in range(1, plan.count + 1) if n not in stored]
    wrong = [p for p in parts if p.number > plan.count or p.size != plan.size_of(p.number)]
    return Check(missing=missing, wrong_size=sorted(wrong, key=lambda p: p.number))


def stored_bytes(parts: Sequence[StoredPart], plan: Plan) -> int:
    """The bytes of the file R2 holds in parts of the right size (a wrong one counts for nothing)."""
    return sum(p.size for p in parts if p.number <= plan.count and p.size == plan.size_of(p.number))


def _some(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:5])
    return shown + (f" and {len(numbers) - 5} more" if len(numbers) > 5 else "")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
