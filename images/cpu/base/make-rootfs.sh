#!/bin/sh
# Root file system of the cpu image's base: Debian bookworm minbase with Python 3.11 and venv.
# Usage (as root): make-rootfs.sh DIR. This file's content is the base image's cache key, so
# any change here makes a new base (and so a new cpu image tag).
set -eu
dir=$1
mirror=${TESTBED_DEBIAN_MIRROR:-http://deb.debian.org/debian}
debootstrap --variant=minbase --include=python3,python3-venv bookworm "$dir" "$mirror"
# Package caches and lists are not needed to run (the image installs nothing from apt later).
rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* \
       "$dir"/usr/share/man "$dir"/usr/share/info "$dir"/usr/share/locale
