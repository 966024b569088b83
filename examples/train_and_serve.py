"""Train a scikit-learn model, save it to the registry, promote it, and serve it from another process.

Needs the scikit-learn extra (``pip install "modelreg[sklearn]"``); runs on the default registry
like the quickstart (``$MODELREG_URI``, else ``$MODELREG_HOME``, else ``~/.modelreg/registry``).

    python examples/train_and_serve.py
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from modelreg import Registry

MODEL = "examples/churn-sklearn"

# -- the training job ------------------------------------------------------------------------
X, y = make_classification(n_samples=600, n_features=8, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
model = LogisticRegression(C=0.5, max_iter=500).fit(X_train, y_train)
auc = roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])

reg = Registry()
mv = reg.save_model(
    MODEL,
    model,
    input_example=X_test[:5],  # the signature (8 float64 columns) is inferred from it
    params={"C": 0.5},
    metrics={"auc": round(float(auc), 4)},
)
info = mv.model
assert info is not None
print(f"saved {mv.ref}: flavor={info.flavor} format={info.format} unsafe={info.unsafe}")
print(f"signature: {info.signature.kind if info.signature else None}, requirements: {', '.join(info.requirements)}")

reg.transition(mv.ref, "production", comment=f"auc {auc:.3f}")

# -- the serving process: another interpreter, as a deployment would be --------------------------
serve = textwrap.dedent(f"""
    import numpy as np
    from modelreg import Registry

    reg = Registry()
    model = reg.load_model("{MODEL}@production", record_use=True, purpose="example scoring")
    origin = reg.loaded_from(model)
    rows = np.load(__import__("sys").argv[1])
    print("served", origin.ref, origin.digest[:19], "predictions", model.predict(rows).tolist())
""")
rows_file = "rows.npy"
import numpy as np  # noqa: E402  (kept next to its only use)

np.save(rows_file, X_test[:8])
out = subprocess.run([sys.executable, "-c", serve, rows_file], capture_output=True, text=True, check=True).stdout
print(out.strip())
assert out.split("predictions ")[1].strip() == str(model.predict(X_test[:8]).tolist()), "predictions differ"
print("same predictions in the serving process: True")

used = [r for r in reg.history(MODEL, usage=True) if type(r).__name__ == "UsageRecord"]
print(
    f"usage log of {MODEL}: {len(used)} record(s), last: {used[-1].action} of {used[-1].ref} for {used[-1].purpose!r}"
)
print(f"cached at {reg.fetch(mv.ref)}")
