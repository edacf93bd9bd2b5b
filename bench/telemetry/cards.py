"""Cards that the framework shows as two devices but that report power once (pure functions).

An Iluvatar BI-V150 is two GPUs on one card and only one GPU of the pair reports the card's
board power; an AMD Instinct MI250X is two GCDs in one package and only the primary die
reports the package's power (rocm-smi prints ``N/A (Secondary die)`` for the other, amdsmi 0
or N/A). In both cases devices 2k and 2k+1 form the card. :func:`attribute_card_power` gives
each card's power to exactly one of the devices a run uses, says in the result that it is the
whole card's, and never adds it twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TwoDeviceCard:
    """A card model shown as two devices (2k, 2k+1) with one power reading for both."""

    label: str  # "BI-V150 card", "MI250X package"
    pattern: re.Pattern[str]  # matched against the device name
    unit: str = "GPU"  # what the framework calls each device

    def matches(self, name: str | None) -> bool:
        return bool(self.pattern.search(name or ""))


BI_V150 = TwoDeviceCard("BI-V150 card", re.compile(r"BI-V150(?![0-9A-Za-z])"))
MI250X = TwoDeviceCard("MI250X package", re.compile(r"MI250X?(?![0-9A-Za-z])"), "GCD")


@dataclass(frozen=True)
class PowerAttribution:
    power_w: dict[int, float | None]
    scope: dict[int, str]
    reasons: dict[int, str] = field(default_factory=dict)
    # devices (physical index) whose card power is counted on another used device
    elsewhere: frozenset[int] = frozenset()


def card_pair(index: int) -> tuple[int, int]:
    """The two device indices of the card that device ``index`` sits on."""
    even = index - index % 2
    return even, even + 1


def attribute_card_power(used: list[int], names: dict[int, str | None],
                         power_w: dict[int, float | None],
                         card: TwoDeviceCard = BI_V150) -> PowerAttribution:
    """Per-device power for the devices a run uses, counting each two-device card once.

    ``names`` and ``power_w`` are keyed by physical index and hold the partner devices of a
    two-device card as well as the used ones. A single-device board keeps its own reading.
    For a two-device card, the first used device of the pair gets the card's power (the odd
    device's reading, or the even one's if only that one reports) and any other used device
    of the same card gets ``None`` with the reason, so summing never counts a card twice.
    """
    out: dict[int, float | None] = {}
    scope: dict[int, str] = {}
    reasons: dict[int, str] = {}
    carrier: dict[tuple[int, int], int] = {}
    elsewhere: set[int] = set()
    u = card.unit
    for i in used:
        if not card.matches(names.get(i)):
            out[i] = power_w.get(i)
            scope[i] = f"{u} {i} board power"
            if out[i] is None:
                reasons[i] = f"{u} {i} reports no power"
            continue
        pair = card_pair(i)
        n_used = sum(1 for j in used if card_pair(j) == pair)
        if pair in carrier:
            out[i] = None
            elsewhere.add(i)
            scope[i] = f"counted on {u} {carrier[pair]} (same {card.label})"
            reasons[i] = (f"the power of the {card.label} holding {u}s {pair[0]}+{pair[1]} is "
                          f"counted once, on {u} {carrier[pair]}")
            continue
        carrier[pair] = i
        odd, even = power_w.get(pair[1]), power_w.get(pair[0])
        out[i] = odd if odd is not None else even
        source = pair[1] if odd is not None else pair[0]
        scope[i] = (f"whole {card.label} ({u}s {pair[0]}+{pair[1]}, power read on {u} "
                    f"{source}); the run uses {n_used} of its 2 {u}s")
        if out[i] is None:
            reasons[i] = (f"neither {u} {pair[0]} nor {u} {pair[1]} of the {card.label} "
                          "reports power")
    return PowerAttribution(out, scope, reasons, frozenset(elsewhere))


def partner_indices(used: list[int], names: dict[int, str | None],
                    card: TwoDeviceCard = BI_V150) -> list[int]:
    """The other device of each used two-device card, when the run does not use it itself."""
    extra: list[int] = []
    for i in used:
        if card.matches(names.get(i)):
            for j in card_pair(i):
                if j not in used and j not in extra:
                    extra.append(j)
    return extra
