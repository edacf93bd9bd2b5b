"""``python -m bench.devices``: every vendor's detection in this environment, one JSON line
each (``{"vendor", "available", "reason"}``), in the order of ``bench.vendors.VENDORS``.

Detection asks the vendor's PyTorch build, so this imports torch; ``python -m bench list``
runs it in a child process with a timeout, so a listing never waits on torch or on a
vendor extension that hangs, and imports neither itself.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    from bench.devices import BACKENDS

    for name, cls in BACKENDS.items():
        try:
            det = cls.detect()
            line = {"vendor": name, "available": bool(det.available), "reason": det.reason}
        except Exception as exc:  # one vendor's broken stack must not hide the others
            line = {"vendor": name, "available": False,
                    "reason": f"detection failed: {type(exc).__name__}: {exc}"}
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
