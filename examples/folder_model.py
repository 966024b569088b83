"""A saved-model folder: register a directory, fine-tune it, follow lineage, search.

A folder (config, weights, tokenizer...) is registered as one version: every
file becomes a sha256-addressed blob and the version records a manifest, so a
fine-tuned version that changes only the weights stores only the new weights.

    python examples/folder_model.py [REGISTRY]

REGISTRY defaults to the default registry ($MODELREG_URI, else $MODELREG_HOME,
else ~/.modelreg/registry). The script can be run repeatedly.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

from modelreg import Registry

MODEL = "nlp/sentiment"


def save_model(folder: Path, *, weights: bytes, labels: list[str]) -> Path:
    """Stand-in for ``model.save_pretrained(folder)``: a config, weights and a tokenizer."""
    (folder / "tokenizer").mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"architecture": "tiny-bert", "labels": labels}, indent=2))
    (folder / "weights.bin").write_bytes(weights)
    (folder / "tokenizer" / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "good", "bad", "movie"]))
    return folder


def main() -> None:
    reg = Registry(sys.argv[1] if len(sys.argv) > 1 else None)
    print(f"registry: {reg!r}")

    with tempfile.TemporaryDirectory(prefix="modelreg-folder-") as tmp:
        work = Path(tmp)
        dataset = work / "reviews.csv"
        dataset.write_text("text,label\ngood movie,pos\nbad movie,neg\n")
        dataset_digest = "sha256:" + hashlib.sha256(dataset.read_bytes()).hexdigest()
        code = {"commit": os.urandom(20).hex(), "repo": "https://git.example.com/acme/nlp.git", "dirty": False}

        # 1. the base model: a folder with three files
        base_dir = save_model(work / "base", weights=os.urandom(256 * 1024), labels=["neg", "pos"])
        base = reg.register(
            MODEL,
            base_dir,
            params={"epochs": 3, "base_model": "tiny-bert"},
            metrics={"accuracy": 0.88},
            tags={"task": "sentiment"},
            lineage={
                "run_id": f"pretrain-{code['commit'][:8]}",
                "run_url": "https://tracker.example.com/runs/pretrain",
                "code": code,
                "datasets": [{"uri": "s3://data/reviews.csv", "digest": dataset_digest, "role": "train"}],
            },
            format="tiny-bert",
        )
        print(f"\nregistered {base.ref}: {base.artifact.kind} with {len(base.artifact.files)} files, {base.size} bytes")
        for f in base.artifact.files:
            print(f"  {f.path:<20} {f.size:>8} bytes  {f.digest[:19]}...")

        # 2. fine-tuning changes the weights only; the parent is recorded in the lineage
        tuned_dir = save_model(work / "tuned", weights=os.urandom(256 * 1024), labels=["neg", "pos"])
        tuned = reg.register(
            MODEL,
            tuned_dir,
            params={"epochs": 1, "base_model": "tiny-bert", "lr": 2e-5},
            metrics={"accuracy": 0.92},
            tags={"task": "sentiment", "domain": "movies"},
            lineage={
                "run_id": f"finetune-{code['commit'][:8]}",
                "code": code,
                "datasets": [{"uri": "s3://data/reviews.csv", "digest": dataset_digest, "role": "fine-tune"}],
                "parents": [base.ref],
            },
            format="tiny-bert",
        )
        diff = reg.compare(base.ref, tuned.ref)
        print(f"\nregistered {tuned.ref}, fine-tuned from {tuned.lineage.parents[0]}")
        stored = {f.digest for v in (base, tuned) for f in v.artifact.files}
        n_files = len(base.artifact.files) + len(tuned.artifact.files)
        print(f"  files changed: {diff.files_changed}; {n_files} files in the two versions, {len(stored)} blobs stored")
        print(f"  metrics: {diff.metrics}")
        print(f"  environment captured automatically: Python {tuned.lineage.environment.python}")

        # 3. lineage: walk the parents back to the root
        chain, mv = [], tuned
        while True:
            chain.append(mv.ref)
            if not mv.lineage.parents:
                break
            mv = reg.get_version(mv.lineage.parents[0])
        print(f"\nlineage of {tuned.ref}: {' <- '.join(chain)}")

        # 4. search by lineage, params, tags and metrics
        print("\nsearch:")
        for query in (
            f"lineage.code.commit = '{code['commit']}'",
            f"name = '{MODEL}' and params.base_model = 'tiny-bert' and metrics.accuracy >= 0.9",
            f"name = '{MODEL}' and tags.domain = 'movies'",
        ):
            hits = reg.search(query, order_by="version desc")
            print(f"  {query}\n    -> {[h.ref for h in hits]}")

        # 5. download the folder, verified file by file
        reg.transition(tuned.ref, "staging", comment="ready for shadow traffic")
        out = reg.download(f"{MODEL}@staging", work / "serving")
        files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
        print(f"\ndownloaded {MODEL}@staging ({tuned.ref}) to a folder: {files}")
        assert (out / "weights.bin").read_bytes() == (tuned_dir / "weights.bin").read_bytes()

        report = reg.verify(MODEL)
        print(f"verify ok={report.ok}: {report.blobs_checked} blobs, {report.events_checked} events checked")

    reg.close()


if __name__ == "__main__":
    main()
