#!/bin/sh
# Seeds the corpora of every target from the committed fixtures (run from fuzz/; stdlib python).
set -e
mkdir -p corpus/lpk corpus/gguf corpus/zip corpus/pickle
cp ../convert/tests/gguf/fixtures/*.gguf corpus/gguf/ 2>/dev/null || true
for f in ../fixtures/pth/*.pth ../fixtures/pth/meta_ok/*.pth; do
    cp "$f" "corpus/zip/$(basename "$(dirname "$f")")_$(basename "$f")"
done
python3 - <<'PY'
import glob, os, zipfile
for f in glob.glob("../fixtures/pth/*.pth") + glob.glob("../fixtures/pth/meta_ok/*.pth"):
    try:
        z = zipfile.ZipFile(f)
    except Exception:
        continue
    for n in z.namelist():
        if n.endswith("data.pkl"):
            try:
                data = z.read(n)
            except Exception:
                continue
            name = os.path.basename(os.path.dirname(f)) + "_" + os.path.basename(f) + ".pkl"
            open(os.path.join("corpus/pickle", name), "wb").write(data)
PY
