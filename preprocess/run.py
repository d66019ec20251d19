"""Preprocess entry point: clips -> webdataset shards + ONE global conditioning.

    python preprocess/run.py --audio-dir clips/ --out data/                      # one process
    torchrun --nproc_per_node 4 preprocess/run.py --audio-dir clips/ --out data/  # 4 ranks
    torchrun --nnodes 2 --node_rank $NODE_RANK --nproc_per_node 1 --rdzv_backend c10d \\
        --rdzv_endpoint HOST:29400 --rdzv_id prep preprocess/run.py --audio-dir clips/ --out data/

All logic lives in `indextts_dist.preprocess`; see `indextts-dist preprocess --help` for every option.
"""

import sys

from indextts_dist.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["preprocess", *sys.argv[1:]]))
