"""`python -m cambrian.train CONFIG [--key=value ...]`: the entry torchrun launches
(torchrun --nproc-per-node 2 -m cambrian.train configs/tiny-stage1.yaml --strategy=fsdp)."""

from cambrian.train.cli import main

main()
