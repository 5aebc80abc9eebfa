"""Fine-tuning throughput with 1 and 2 data-parallel CPU processes (a benchmark, not a test).

Each measurement launches this script as ``--worker`` (N=1: a plain
process; N>1: ``accelerate launch --multi_gpu --num_processes N``, gloo on
CPU), which fine-tunes a random-weight wav2vec2 (``--size tiny``, ``small``
or ``base``: the facebook/wav2vec2-base geometry) for one epoch on
synthetic 2.5 s clips through :func:`mer_utils.experts.audio.ssl_train.finetune`,
with the same effective batch for every N. ``--configs`` lists
``<processes>x<threads per process>`` (default: one process on all cores, one
process on one thread, two processes on half the cores each), so the numbers
compare ways of using the same cores.
Prints training clips/s per N: rank 0's wall time of the epoch, which includes a one-clip
validation and the epoch-end Trainer checkpoint (model start-up excluded).

    python benchmarks/bench_ddp.py --size small --clips 32 --configs 1x2 1x1 2x1
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZES = {
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                 conv_dim=(8, 8, 8), conv_kernel=(10, 4, 4), conv_stride=(5, 8, 8), num_feat_extract_layers=3,
                 num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2),
    "small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                  conv_dim=(128,) * 7, num_conv_pos_embeddings=64),
    "base": {},  # the Wav2Vec2Config defaults are wav2vec2-base's geometry
}


def worker(args) -> None:
    import numpy as np
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    sys.path.insert(0, str(REPO))
    from mer_utils.experts import distributed
    from mer_utils.experts.audio.ssl_model import SSLClassifier
    from mer_utils.experts.audio.config import AudioTrainConfig
    from mer_utils.experts.audio.ssl_train import finetune

    torch.manual_seed(0)
    backbone = Wav2Vec2Model(Wav2Vec2Config(**SIZES[args.size], mask_time_prob=0.05))
    model = SSLClassifier(backbone, Wav2Vec2FeatureExtractor(), labels=("A", "B", "C", "D", "E", "F"))
    rng = np.random.default_rng(0)
    waves = [rng.normal(scale=0.1, size=int(16_000 * 2.5)).astype(np.float32) for _ in range(args.clips)]
    y = np.arange(args.clips) % 6
    config = AudioTrainConfig(backbone="facebook/wav2vec2-base", epochs=1, batch_size=args.batch_size, grad_accum=1,
                              effective_batch_size=args.batch_size * 2, save_every_steps=10**6, patience=99,
                              progress=False)
    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        _, report = finetune(model, waves, y, waves[:1], y[:1], config=config, work_dir=work)
        seconds = time.perf_counter() - start
    if distributed.is_main_process():
        print("RESULT " + json.dumps({"processes": report["num_processes"], "seconds": round(seconds, 2),
                                      "clips_per_s": round(args.clips / seconds, 2),
                                      "effective_batch": report["effective_batch_size"],
                                      "threads_per_process": torch.get_num_threads()}))


def measure(n: int, threads: int, args) -> dict:
    script = [str(Path(__file__).resolve()), "--worker", "--size", args.size, "--clips", str(args.clips),
              "--batch-size", str(args.batch_size)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": str(REPO)}
    if n == 1:
        cmd = [sys.executable, *script]
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(n),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(port), *script]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{n} process(es) failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=tuple(SIZES), default="small")
    parser.add_argument("--clips", type=int, default=32, help="training clips of 2.5 s (one epoch)")
    parser.add_argument("--batch-size", type=int, default=4, help="clips per device and forward pass")
    cores = os.cpu_count() or 2
    parser.add_argument("--configs", nargs="+", default=[f"1x{cores}", "1x1", f"2x{max(1, cores // 2)}"],
                        help="<processes>x<threads per process> to measure")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    print(f"fine-tuning a random {args.size} wav2vec2, {args.clips} clips x 2.5 s, batch {args.batch_size} "
          f"per device; {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}")
    print(f"{'processes':>9}  {'threads/proc':>12}  {'eff. batch':>10}  {'seconds':>8}  {'clips/s':>8}")
    for config in args.configs:
        n, threads = (int(v) for v in config.split("x"))
        r = measure(n, threads, args)
        print(f"{r['processes']:>9}  {r['threads_per_process']:>12}  {r['effective_batch']:>10}  "
              f"{r['seconds']:>8.2f}  {r['clips_per_s']:>8.2f}")


if __name__ == "__main__":
    main()
