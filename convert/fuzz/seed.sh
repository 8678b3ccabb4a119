#!/bin/sh
# Seeds the corpora from fixtures/pth (run from convert/).
set -e
mkdir -p fuzz/corpus/zip fuzz/corpus/pickle
for f in ../fixtures/pth/*.pth ../fixtures/pth/meta_ok/*.pth; do
    cp "$f" "fuzz/corpus/zip/$(basename "$(dirname "$f")")_$(basename "$f")"
done
/work/venv/bin/python - <<'PY'
import glob, zipfile, os
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
            open(os.path.join("fuzz/corpus/pickle", os.path.basename(os.path.dirname(f)) + "_" + os.path.basename(f) + ".pkl"), "wb").write(data)
PY
