"""The training job: frozen GPT + LoRA, the global conditioning as a constant prefix, under Accelerate.

    accelerate launch --config_file accelerate_config.yaml launch/train.py --data data/ --out run/

Per micro-batch: packed teacher-forced pass, masked CE (0.2 text + 0.8 mel), backward; at each
accumulation boundary the optimizer steps (AdamW, cosine with warm-up, clipped). One small
all-reduce per micro-batch carries (non-finite loss?, SIGTERM seen?, tokens) so that every rank
makes the same decision at the same step: skip a bad batch, or checkpoint and exit on eviction.
"""

from __future__ import annotations

import hashlib
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed
from torch import nn
from transformers import get_cosine_schedule_with_warmup

from ..conditioning import load_conditioning
from ..lora import apply_lora
from ..model import base_fingerprint, build_model, preset
from ..model.unified_voice import UnifiedVoice
from .batching import Batch, BatchStream, steps_per_epoch
from .checkpoints import TrainState, latest_checkpoint, prune_checkpoints, read_state, save_checkpoint
from .dataset import DatasetManifest, load_manifest
from .engine import describe, make_accelerator
from .loss import LossParts, pattern_loss
from .options import TrainOptions
from .safe_resume import restricted_checkpoint_loading
from .validation import validation_loss

__all__ = ["PatternTrainModel", "TrainResult", "train"]


class PatternTrainModel(nn.Module):
    """The step's model: the LoRA-wrapped GPT and the 34-row prefix, built once, as a constant buffer."""

    def __init__(self, peft_model: nn.Module, prefix: torch.Tensor, text_weight: float, mel_weight: float):
        super().__init__()
        self.peft = peft_model
        self.register_buffer("prefix", prefix.detach().clone(), persistent=False)
        self.text_weight, self.mel_weight = text_weight, mel_weight

    @property
    def gpt(self) -> UnifiedVoice:
        return self.peft.get_base_model()

    def forward(self, text_ids, text_lengths, codes, code_lengths) -> LossParts:
        out = self.gpt.forward_packed(self.prefix, text_ids, text_lengths, codes, code_lengths)
        return pattern_loss(out, text_lengths, code_lengths, self.text_weight, self.mel_weight)


@dataclass
class TrainResult:
    state: TrainState
    checkpoint_root: Path
    base_fingerprint: str
    losses: list[float]
    """Training loss per optimizer step (mean over ranks)."""
    is_main: bool = True
    stopped_by_signal: bool = False


class _Eviction:
    """SIGTERM (Kubernetes eviction, preemption) only sets a flag; the loop checkpoints and exits 0."""

    def __init__(self) -> None:
        self.seen = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame) -> None:
        self.seen = True

    def restore(self) -> None:
        signal.signal(signal.SIGTERM, self._previous)


def _configure_deepspeed(accelerator: Accelerator, opts: TrainOptions) -> None:
    """Batches have variable sizes (token budget), so DeepSpeed's micro-batch size is nominal; our
    accumulation and clipping settings override the launch config's."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None:
        return
    cfg = plugin.deepspeed_config
    cfg["train_micro_batch_size_per_gpu"] = 1
    cfg["gradient_accumulation_steps"] = opts.optim.grad_accum
    cfg["gradient_clipping"] = opts.optim.max_grad_norm
    cfg.setdefault("steps_per_print", 10**9)


def _build(opts: TrainOptions, manifest: DatasetManifest) -> tuple[PatternTrainModel, str]:
    cfg = preset(opts.preset)
    weights = opts.weights_dir / "gpt.pth" if opts.weights_dir else None
    cond = load_conditioning(manifest.conditioning_path, cfg)
    fingerprint = base_fingerprint(opts.preset, weights, seed=opts.seed)
    made_with = cond.metadata.get("base_model_fingerprint")
    if made_with and made_with != fingerprint:
        raise ValueError(
            f"{manifest.conditioning_path}: computed with base model {made_with[:12]}…, but training uses "
            f"{fingerprint[:12]}… (other weights or --seed); re-run preprocess with this base"
        )
    base = build_model(opts.preset, weights, seed=opts.seed, with_conditioning_encoders=False)
    with torch.no_grad():
        prefix = base.build_prefix(cond.gpt_conditioning, cond.emo_vec)
    peft_model = apply_lora(base, opts.lora)
    module = PatternTrainModel(peft_model, prefix, opts.optim.text_weight, opts.optim.mel_weight)
    return module, fingerprint


def _adapter_exporter(accelerator: Accelerator, model: nn.Module):
    def export(target: Path) -> None:
        state = accelerator.get_state_dict(model)  # gathers under ZeRO-3; a no-op copy otherwise
        if accelerator.is_main_process:
            peft_state = {k[len("peft.") :]: v for k, v in state.items() if k.startswith("peft.")}
            accelerator.unwrap_model(model).peft.save_pretrained(
                str(target), state_dict=peft_state, safe_serialization=True
            )

    return export


def _grad_norm(accelerator: Accelerator, model: nn.Module, max_norm: float) -> float:
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        norm = model.get_global_grad_norm()  # DeepSpeed clips inside its step
        return float(norm) if norm is not None else float("nan")
    params = [p for p in model.parameters() if p.requires_grad]
    return float(accelerator.clip_grad_norm_(params, max_norm))


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class _Plan:
    micro_per_epoch: int
    steps_per_epoch: int
    total_steps: int


def _plan(opts: TrainOptions, manifest: DatasetManifest, world: int) -> _Plan:
    lengths = [(s.text_len, s.code_len) for s in manifest.train_samples]
    workers = max(1, opts.num_workers)
    micro = steps_per_epoch(lengths, opts.optim.max_tokens_per_batch, world, workers)
    per_epoch = math.ceil(micro / opts.optim.grad_accum)
    total = opts.optim.epochs * per_epoch
    return _Plan(micro, per_epoch, min(total, opts.max_steps) if opts.max_steps else total)


class Trainer:
    """Holds what training carries (model, optimizer, scheduler, state) and runs it step by step.

    Rank-0-only work (logging, pruning, metrics) is gated by `self.main` in one place per concern.
    """

    def __init__(self, opts: TrainOptions, metrics=None) -> None:
        self.opts = opts
        self.metrics = metrics
        self.accelerator = make_accelerator(opts.optim.grad_accum)
        _configure_deepspeed(self.accelerator, opts)
        set_seed(opts.seed)
        self.main = self.accelerator.is_main_process
        self.log(f"[train] {describe(self.accelerator)}")
        self.manifest = load_manifest(opts.data)
        module, self.fingerprint = _build(opts, self.manifest)
        self.trainable = [p for p in module.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            self.trainable, lr=opts.optim.learning_rate, weight_decay=opts.optim.weight_decay
        )
        self.plan = _plan(opts, self.manifest, self.accelerator.num_processes)
        warmup = min(opts.optim.warmup_steps, self.plan.total_steps)
        scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, self.plan.total_steps)
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(module, optimizer, scheduler)
        n_train, n_val = len(self.manifest.train_samples), len(self.manifest.val_samples)
        plan, world = self.plan, self.accelerator.num_processes
        self.log(
            f"[train] {n_train} train / {n_val} val samples, {plan.micro_per_epoch} micro-batches x {world} "
            f"ranks per epoch, {plan.steps_per_epoch} steps/epoch, {plan.total_steps} steps, "
            f"{sum(p.numel() for p in self.trainable):,} trainable (LoRA) parameters"
        )
        self.ckpt_root = opts.out / "checkpoints"
        self.state = TrainState()
        self.export = _adapter_exporter(self.accelerator, self.model)
        self.losses: list[float] = []
        self._window: list[torch.Tensor] = []
        self._tokens, self._since = 0, time.perf_counter()
        self._grad_norm = 0.0

    def log(self, line: str) -> None:
        if self.main:
            _log(line)

    # -- checkpoints ----------------------------------------------------------------------------
    def resume(self) -> None:
        latest = latest_checkpoint(self.ckpt_root)
        if latest is None:
            self.log(f"[train] --resume: no checkpoint in {self.ckpt_root}, starting fresh")
            return
        with restricted_checkpoint_loading(self.model):
            self.accelerator.load_state(str(latest))
        self.state = read_state(latest)
        self.log(f"[train] resumed from {latest} (step {self.state.step}, epoch {self.state.epoch})")

    def checkpoint(self, epoch_end: bool) -> Path:
        self.state.epoch_end = epoch_end
        path = save_checkpoint(self.accelerator, self.ckpt_root, self.state, self.export)
        if self.main:
            best = {self.state.best_checkpoint} if self.state.best_checkpoint else set()
            prune_checkpoints(self.ckpt_root, self.opts.keep_epochs, best)
        return path

    # -- one micro-batch ----------------------------------------------------------------------
    def micro_step(self, batch: Batch, eviction: _Eviction) -> torch.Tensor:
        """Forward, one all-reduce of [non-finite?, SIGTERM?, tokens, loss, text, mel], backward, step."""
        acc = self.accelerator
        with acc.accumulate(self.model):
            parts = self.model(batch.text_ids, batch.text_lengths, batch.codes, batch.code_lengths)
            finite = bool(torch.isfinite(parts.total))
            losses = [float(parts.total), float(parts.text), float(parts.mel)] if finite else [0.0] * 3
            local = [float(not finite), float(eviction.seen), float(batch.real_tokens), *losses]
            flags = acc.reduce(torch.tensor(local, dtype=torch.float64, device=acc.device), reduction="sum")
            if flags[0] > 0:
                # Every rank skips: a zero gradient through every adapter weight keeps DDP/DeepSpeed in step.
                acc.backward(sum(p.sum() for p in self.trainable) * 0.0)
            else:
                acc.backward(parts.total)
            self._grad_norm = (
                _grad_norm(acc, self.model, self.opts.optim.max_grad_norm) if acc.sync_gradients else 0.0
            )
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad()
        return flags.cpu()

    def account(self, flags: torch.Tensor) -> None:
        """Book-keeping after a micro-batch: skipped-step counting and the loss window."""
        self._tokens += int(flags[2])
        if flags[0] > 0:
            self.state.skipped_steps += 1
            self.state.bad_in_a_row += 1
            self.log(
                f"[train] step {self.state.step}: non-finite loss, batch skipped (#{self.state.bad_in_a_row})"
            )
            if self.state.bad_in_a_row >= self.opts.optim.max_bad_steps:
                raise FloatingPointError(
                    f"{self.state.bad_in_a_row} non-finite losses in a row at step {self.state.step}: "
                    "the run diverged; lower --learning-rate or check the data"
                )
        else:
            self.state.bad_in_a_row = 0
            self._window.append(flags[3:] / self.accelerator.num_processes)

    def after_optimizer_step(self) -> None:
        self.state.step += 1
        if self._window:
            loss, text, mel = (float(v) for v in torch.stack(self._window).mean(0))
            self.losses.append(loss)
            speed = self._tokens / max(time.perf_counter() - self._since, 1e-9)
            if self.metrics is not None:
                values = {"loss": loss, "text_loss": text, "mel_loss": mel, "grad_norm": self._grad_norm}
                values.update(lr=self.scheduler.get_last_lr()[0], tokens_per_s=speed)
                self.metrics.log(values, step=self.state.step)
            self.log(f"[train] step {self.state.step} loss {loss:.6f} (text {text:.4f}, mel {mel:.4f})")
        self._window, self._tokens, self._since = [], 0, time.perf_counter()

    # -- epochs ---------------------------------------------------------------------------------
    def batches(self) -> torch.utils.data.DataLoader:
        stream = BatchStream(
            self.manifest.shards, rank=self.accelerator.process_index, world=self.accelerator.num_processes,
            epoch=self.state.epoch, seed=self.opts.seed, steps=self.plan.micro_per_epoch,
            max_tokens=self.opts.optim.max_tokens_per_batch, exclude=self.manifest.val_keys,
        )  # fmt: skip
        return torch.utils.data.DataLoader(stream, batch_size=None, num_workers=self.opts.num_workers)

    def end_epoch(self) -> None:
        val = validation_loss(self.accelerator, self.model, self.manifest, self.opts)
        epoch_done = self.state.micro_in_epoch >= self.plan.micro_per_epoch
        if epoch_done:
            self.state.epoch += 1
            self.state.micro_in_epoch = 0
        self.state.val_history.append({"epoch": self.state.epoch, "step": self.state.step, "val_loss": val})
        if val is not None and (self.state.best_val is None or val < self.state.best_val):
            self.state.best_val = val
            self.state.best_checkpoint = f"step-{self.state.step:08d}"
        if self.metrics is not None and val is not None:
            self.metrics.log({"val_loss": val, "epoch": self.state.epoch}, step=self.state.step)
        self.log(f"[train] epoch {self.state.epoch} done at step {self.state.step}: val loss {val}")
        self.checkpoint(epoch_end=epoch_done)

    def finished(self) -> bool:
        over = self.state.epoch >= self.opts.optim.epochs
        return over or bool(self.opts.max_steps and self.state.step >= self.opts.max_steps)

    def run(self) -> TrainResult:
        eviction = _Eviction()
        try:
            while not self.finished():
                self.model.train()
                for micro, batch in enumerate(self.batches()):
                    if micro < self.state.micro_in_epoch:
                        continue  # resume: applied before the checkpoint
                    flags = self.micro_step(batch.to(self.accelerator.device), eviction)
                    self.account(flags)
                    self.state.micro_in_epoch = micro + 1
                    if not self.accelerator.sync_gradients:
                        continue
                    self.after_optimizer_step()
                    if flags[1] > 0:
                        path = self.checkpoint(epoch_end=False)
                        self.log(f"[train] SIGTERM: saved {path}; exiting 0 (restart with --resume)")
                        return self.result(stopped=True)
                    if self.opts.save_every and self.state.step % self.opts.save_every == 0:
                        self.checkpoint(epoch_end=False)
                    if self.finished():
                        break
                self.end_epoch()
        finally:
            eviction.restore()
        self._report_adapter()
        return self.result(stopped=False)

    def _report_adapter(self) -> None:
        """Each rank prints a digest of its adapter weights: equal digests prove synchronized ranks."""
        digest = hashlib.sha256()
        for p in self.trainable:
            digest.update(p.detach().float().cpu().numpy().tobytes())
        _log(f"[train] rank {self.accelerator.process_index} adapter sha256 {digest.hexdigest()[:16]}")

    def result(self, stopped: bool) -> TrainResult:
        return TrainResult(self.state, self.ckpt_root, self.fingerprint, self.losses, self.main, stopped)


def train(opts: TrainOptions, metrics=None) -> TrainResult:
    """Run (or resume, with `opts.resume`) training; `metrics` is a MetricsLogger or None."""
    trainer = Trainer(opts, metrics)
    if opts.resume:
        trainer.resume()
    return trainer.run()
