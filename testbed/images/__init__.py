"""Per-vendor images: specs (images/<vendor>/vendor.yaml), locks, builds and container runs.

Host-side only. ``spec`` reads and validates the declarative vendor specs; ``lock`` makes the
hash-pinned Python locks and the offline wheelhouses; ``base`` makes the cpu image's base with
debootstrap when no registry is reachable; ``build`` builds an image with the Docker SDK from
its Dockerfile, tagged by the hash of every build input; ``containers`` turns a spec into
``docker run`` options and runs ``python -m bench run`` in the image.
"""
