#!/usr/bin/env bash
# Here (no GPU): put what the GPU check needs into .gpu/ (ignored by git, carried to the device machine):
# the JPEG CIFAR-10 archive, pyautoattack's package (its wheel without the 45 MB of examples) and the commit.
# Usage: bash benchmarks/gpu_prepare.sh [path/to/cifar10-jpeg.tar.gz]   (default ../shared/data/...)
set -euo pipefail
cd "$(dirname "$0")/.."
archive="${1:-../shared/data/cifar10-jpeg.tar.gz}"
[ -f "$archive" ] || { echo "error: $archive not found; expected the JPEG CIFAR-10 archive" >&2; exit 2; }
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/site .gpu/wheel
cp "$archive" .gpu/cifar10-jpeg.tar.gz
python3 -m pip download -q --no-deps --only-binary=:all: -d .gpu/wheel pyautoattack==0.2.0
python3 - <<'PY'
import glob, zipfile
wheel = zipfile.ZipFile(glob.glob(".gpu/wheel/pyautoattack-*.whl")[0])
wheel.extractall(".gpu/site", [n for n in wheel.namelist() if "/examples/" not in n])
PY
rm -rf .gpu/wheel
{ git rev-parse --short HEAD; git status --porcelain --untracked-files=no | grep -q . && echo "(with uncommitted changes)"; } \
  | paste -sd' ' > .gpu/commit || true
du -sh .gpu; cat .gpu/commit
echo 'then, through the device tool: run(command="bash benchmarks/gpu_check.sh", carry=[".gpu"], timeout_s=560)'
