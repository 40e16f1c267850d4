"""``tests/crash_runner.py`` over the persons and parties of ``test_cross_document_ingest``, where links across
documents are written: ``python tests/cross_document_runner.py CORPUS OUT``.

``KGBUILD_CRASH_AT`` takes the points of ``crash_runner`` and also ``POINT-after-relink@N``: the N-th time
POINT is reached once the links across documents are being written (``relink``, kgbuild.pipeline).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from crash_runner import HashEmbedder, crash_at, settings_for  # noqa: E402,F401
from test_cross_document_ingest import ENTITIES  # noqa: E402

from kgbuild import hooks  # noqa: E402
from kgbuild.extract.gazetteer import GazetteerExtractor  # noqa: E402
from kgbuild.pipeline import ingest  # noqa: E402
from kgbuild.schema import load_schema  # noqa: E402


def crash_after_relink(spec: str) -> None:
    target, _, nth = spec.partition("@")
    point = target.removesuffix("-after-relink")
    seen: Counter[str] = Counter()

    def listener(reached: str) -> None:
        if reached == "relink":
            seen["relink"] += 1
        elif seen["relink"] and reached == point:
            seen[point] += 1
            if seen[point] >= int(nth or 1):
                os.kill(os.getpid(), signal.SIGKILL)

    hooks.listen(listener)


def main() -> None:
    corpus, out = sys.argv[1], sys.argv[2]
    spec = os.environ.get("KGBUILD_CRASH_AT")
    if spec:
        (crash_after_relink if "-after-relink" in spec.partition("@")[0] else crash_at)(spec)
    extractor = GazetteerExtractor(load_schema("business-news"), ENTITIES, max_tokens=64)
    report = ingest(corpus, settings_for(out), extractor=extractor, embedder=HashEmbedder())
    print(json.dumps(report.to_dict(), default=str))


if __name__ == "__main__":
    main()
