"""Training entry point: LoRA on IndexTTS2's GPT stage with one global conditioning.

    # 2 CPU processes, DeepSpeed ZeRO-2 over gloo (tests, demo)
    accelerate launch --config_file accelerate_config.cpu.yaml launch/train.py --data data/ --out run/
    # one workstation, all GPUs, DeepSpeed ZeRO-2 + bf16
    accelerate launch --config_file accelerate_config.yaml launch/train.py --data data/ --out run/
    # 2 nodes: the same under torchrun rendezvous (see k8s/)
    torchrun --nnodes 2 --node_rank $NODE_RANK --nproc_per_node 8 --rdzv_backend c10d \\
        --rdzv_endpoint HOST:29400 --rdzv_id train launch/train.py --data data/ --out run/

Defaults are the guide's: LoRA r=32 alpha=64 dropout 0.05, lr 5e-4, 30 epochs, 100 warm-up steps.
All logic lives in `indextts_dist.train`; `indextts-dist train --help` lists every option.
"""

import sys

from indextts_dist.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
