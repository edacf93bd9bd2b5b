"""The benchmark package: runs unchanged inside every vendor image and natively.

Nothing here may import the host-side package (``testbed``): this code is what ships in the
images, and it must not depend on Docker, pandas or the report.
"""

__version__ = "0.1.0"
