"""The training job: frozen GPT + LoRA, the global conditioning as a constant prefix, under Accelerate.

    accelerate launch --config_file accelerate_config.yaml launch/train.py --data data/ --out run/

Per micro-batch: packed teacher-forced pass, masked CE (0.2 text + 0.8 mel), backward; at each
accumulation boundary the optimizer steps (AdamW, clipped, the learning rate a function of the step:
`schedule.learning_rate_at`). One small all-reduce per micro-batch carries (non-finite loss?,
SIGTERM seen?, tokens, losses) so that every rank makes the same decision at the same step: skip
the accumulation window of a bad batch (no weight, optimizer state or schedule moves), or
checkpoint and exit on eviction. The data of an epoch is planned for the whole job
(`epoch_plan`): every training sample once per epoch whatever the world size.
"""

from __future__ import annotations

import hashlib
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, gather_object, set_seed
from torch import nn

from ..conditioning import check_base, load_conditioning
from ..dataset import DatasetError, DatasetManifest, load_manifest
from ..errors import DivergedError
from ..lora import apply_lora
from ..model import base_fingerprint, base_weights_file, build_model, preset
from ..model.unified_voice import MelPositions, UnifiedVoice
from .batching import Batch
from .checkpoints import TrainState, latest_checkpoint, prune_checkpoints, read_state, save_checkpoint
from .engine import describe, make_accelerator, zero_stage
from .epoch_plan import micro_batches_per_rank
from .export import adapter_exporter
from .loss import LossParts, pattern_loss
from .options import TrainOptions
from .resume_check import check_resumable, run_layout
from .safe_resume import restricted_checkpoint_loading
from .schedule import learning_rate_at
from .stream import PlanStream
from .validation import validation_loss

__all__ = ["PatternTrainModel", "TrainResult", "Trainer"]


class PatternTrainModel(nn.Module):
    """The step's model: the GPT (LoRA-wrapped, or bare for full fine-tuning) and its global
    conditioning prefix (34 rows in v2, 3 in 2.5), built once, as a constant buffer. A per-clip batch
    brings each sample's own latents and emotion vector instead, and its prefix is built from them by
    the same `build_prefix`."""

    def __init__(
        self,
        peft_model: nn.Module,
        prefix: torch.Tensor,
        text_weight: float,
        mel_weight: float,
        language_id: int | None = None,
        mel_positions: MelPositions = "training",
    ):
        super().__init__()
        self.peft = peft_model
        """The PEFT-wrapped GPT (method lora) or the GPT itself (method full)."""
        self.register_buffer("prefix", prefix.detach().clone(), persistent=False)
        self.text_weight, self.mel_weight = text_weight, mel_weight
        self.language_id = language_id
        """2.5: the dataset's `lang_embedding` row, added to every text position as inference adds
        it (SPEC_2_5 §5.2); None for v2."""
        self.mel_positions: MelPositions = mel_positions

    @property
    def gpt(self) -> UnifiedVoice:
        return self.peft if isinstance(self.peft, UnifiedVoice) else self.peft.get_base_model()

    def forward(
        self, text_ids, text_lengths, codes, code_lengths, cond_latents=None, emo_vec=None
    ) -> LossParts:
        prefix = self.prefix if cond_latents is None else self.gpt.build_prefix(cond_latents, emo_vec)
        langs = None
        if self.language_id is not None:
            langs = torch.full((text_ids.size(0),), self.language_id, device=text_ids.device)
        out = self.gpt.forward_packed(prefix, text_ids, text_lengths, codes, code_lengths, langs,
                                      self.mel_positions)  # fmt: skip
        return pattern_loss(out, text_lengths, code_lengths, self.text_weight, self.mel_weight)

    def trainable(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


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


class UnsupportedSetup(DatasetError):
    """A launch configuration the trainer refuses before any work is done."""


def _configure_deepspeed(accelerator: Accelerator, opts: TrainOptions) -> None:
    """Batches have variable sizes (token budget), so DeepSpeed's micro-batch size is nominal; our
    accumulation and clipping settings override the launch config's.

    ZeRO-3 is refused: the frozen base is small next to the activations, and validation and the
    adapter export run the unwrapped module on each rank's own batches, which ZeRO-3's gathered
    parameters do not allow."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None:
        return
    if zero_stage(accelerator) == 3:
        raise UnsupportedSetup(
            "DeepSpeed ZeRO stage 3 is not supported (the base is frozen; use zero_stage: 2 as in "
            "accelerate_config.yaml)"
        )
    cfg = plugin.deepspeed_config
    cfg["train_micro_batch_size_per_gpu"] = 1
    cfg["gradient_accumulation_steps"] = opts.optim.grad_accum
    cfg["gradient_clipping"] = opts.optim.max_grad_norm
    cfg.setdefault("steps_per_print", 10**9)


def _build(opts: TrainOptions, manifest: DatasetManifest) -> tuple[PatternTrainModel, str]:
    cfg = preset(opts.preset)
    weights = base_weights_file(opts.preset, opts.weights_dir)
    if cfg.is_v25 and manifest.language_id is None:
        raise DatasetError(f"{manifest.root}: preprocessed for IndexTTS-2 (no text_language_id); "
                           f"preprocess it with {opts.preset!r} to train that preset")  # fmt: skip
    if not cfg.is_v25 and manifest.language_id is not None:
        raise DatasetError(f"{manifest.root}: preprocessed for IndexTTS-2.5 (2.5 text ids and codes); "
                           f"train it with a -v2.5 preset, not {opts.preset!r}")  # fmt: skip
    cond = load_conditioning(manifest.conditioning_path, cfg)
    fingerprint = base_fingerprint(opts.preset, weights, seed=opts.seed)
    named = str(weights) if weights else f"the {opts.preset} preset, --seed {opts.seed}"
    # Refused here, at start-up, by the rule packaging and generate apply too (not hours later).
    check_base(cond, fingerprint, str(manifest.conditioning_path), f"training's base ({named})")
    base = build_model(opts.preset, weights, seed=opts.seed, with_conditioning_encoders=False)
    with torch.no_grad():
        prefix = base.build_prefix(cond.gpt_conditioning, cond.emo_vec)
    if opts.method == "full":
        trained: nn.Module = base.requires_grad_(True)
    else:
        trained = apply_lora(base, opts.lora)
    module = PatternTrainModel(trained, prefix, opts.optim.text_weight, opts.optim.mel_weight,
                               manifest.language_id, opts.mel_positions)  # fmt: skip
    return module, fingerprint


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
    micro_per_epoch: list[int]
    """Micro-batches each rank runs in each epoch (a multiple of --grad-accum)."""
    total_steps: int


def _plan(opts: TrainOptions, manifest: DatasetManifest, world: int) -> _Plan:
    """Optimizer steps of the whole run, from the manifest alone (the same on every rank)."""
    accum = opts.optim.grad_accum
    micro = [
        micro_batches_per_rank(
            manifest.train_samples, epoch=e, seed=opts.seed, world=world, grad_accum=accum,
            max_tokens=opts.optim.max_tokens_per_batch, prefix_rows=preset(opts.preset).prefix_rows,
        )
        for e in range(opts.optim.epochs)
    ]  # fmt: skip
    total = sum(m // accum for m in micro)
    return _Plan(micro, min(total, opts.max_steps) if opts.max_steps else total)


class Trainer:
    """Holds what training carries (model, optimizer, state) and runs it step by step.

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
        self.trainable = module.trainable()
        # The raw optimizer's param groups are the ones every engine steps with (DeepSpeed's ZeRO
        # optimizer wraps this very object): the learning rate is written there before each step.
        self.adamw = torch.optim.AdamW(
            self.trainable, lr=opts.optim.learning_rate, weight_decay=opts.optim.weight_decay
        )
        world = self.accelerator.num_processes
        self.plan = _plan(opts, self.manifest, world)
        self.model, self.optimizer = self.accelerator.prepare(module, self.adamw)
        self.deepspeed = self.accelerator.distributed_type == DistributedType.DEEPSPEED
        self.train_keys = frozenset(s.key for s in self.manifest.train_samples)
        n_val = len(self.manifest.val_samples)
        self.log(
            f"[train] {len(self.train_keys)} train / {n_val} val samples, {self.plan.micro_per_epoch[0]} "
            f"micro-batches x {world} ranks per epoch, {self.plan.total_steps} steps, "
            f"{sum(p.numel() for p in self.trainable):,} trainable ({opts.method}) parameters, "
            f"{opts.conditioning} conditioning"
        )
        self.ckpt_root = opts.out / "checkpoints"
        self.state = TrainState(layout=run_layout(opts, world, self.manifest))
        self.export = adapter_exporter(self.accelerator, self.model, full=opts.method == "full")
        self.losses: list[float] = []
        self._window: list[torch.Tensor] = []
        self._window_bad = False
        self._window_keys: list[str] = []
        self._epoch_keys: list[str] = []
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
        saved = read_state(latest)
        check_resumable(latest, saved.layout, self.state.layout)
        with restricted_checkpoint_loading(self.model):
            self.accelerator.load_state(str(latest))
        self.state = saved
        self.log(f"[train] resumed from {latest} (step {self.state.step}, epoch {self.state.epoch})")

    def checkpoint(self, epoch_end: bool) -> Path:
        self.state.epoch_end = epoch_end
        if self.metrics is not None and self.metrics.run_id is not None:
            self.state.mlflow_run_id = self.metrics.run_id
        path = save_checkpoint(self.accelerator, self.ckpt_root, self.state, self.export)
        if self.main:
            best = {self.state.best_checkpoint} if self.state.best_checkpoint else set()
            prune_checkpoints(self.ckpt_root, self.opts.keep_epochs, best)
        return path

    # -- one micro-batch ----------------------------------------------------------------------
    def _set_learning_rate(self) -> float:
        """The rate of the next optimizer step, a function of its index alone (`learning_rate_at`)."""
        o = self.opts.optim
        lr = learning_rate_at(self.state.step + 1, o.learning_rate, o.warmup_steps, self.plan.total_steps)
        for group in self.adamw.param_groups:
            group["lr"] = lr
        return lr

    def _backward_skipped(self) -> None:
        """Keep every engine's collectives in step while this window must not move anything.

        DDP: a zero gradient; the optimizer step is then not taken. DeepSpeed steps inside its
        backward, so the window's gradients are made NaN: its overflow check then skips the
        optimizer step (no AdamW state change) and zeroes the gradients, which `_apply_step`
        verifies."""
        total = sum(p.sum() for p in self.trainable)
        self.accelerator.backward(total * (float("nan") if self.deepspeed else 0.0))

    def micro_step(self, batch: Batch, eviction: _Eviction) -> torch.Tensor:
        """Forward, one all-reduce of [non-finite?, SIGTERM?, tokens, weight, losses, samples],
        backward, and at the window's end the optimizer step (or its skip)."""
        acc = self.accelerator
        self._lr = self._set_learning_rate()
        with acc.accumulate(self.model):
            parts = self.model(batch.text_ids, batch.text_lengths, batch.codes, batch.code_lengths,
                               *batch.conditioning())  # fmt: skip
            finite = bool(torch.isfinite(parts.total))
            w = batch.weight if finite else 0.0
            values = (parts.total, parts.text, parts.mel)
            losses = [w * float(v.detach()) for v in values] if finite else [0.0] * 3
            local = [float(not finite), float(eviction.seen), w * batch.real_tokens, w, *losses]
            flags = acc.reduce(torch.tensor(local, dtype=torch.float64, device=acc.device), reduction="sum")
            bad = bool(flags[0] > 0)
            self._window_bad |= bad
            if batch.weight > 0:
                self._window_keys.extend(batch.keys)
            if bad:
                self._backward_skipped()
            else:
                acc.backward(parts.total * batch.weight)
            if acc.sync_gradients:
                self._apply_step()
        return flags.cpu()

    def _apply_step(self) -> None:
        """The accumulation boundary: step the optimizer unless the window held a non-finite loss."""
        acc, skip = self.accelerator, self._window_bad
        if self.deepspeed:
            applied = self.model.was_step_applied()
            if applied == skip:
                what = "applied" if applied else "skipped"
                raise RuntimeError(f"DeepSpeed {what} step {self.state.step + 1} against the trainer")
        if not skip:
            self._grad_norm = _grad_norm(acc, self.model, self.opts.optim.max_grad_norm)
            self.optimizer.step()
            self._epoch_keys.extend(self._window_keys)
        self.optimizer.zero_grad()
        self._step_applied = not skip
        self._window_bad, self._window_keys = False, []

    def account(self, flags: torch.Tensor) -> None:
        """Book-keeping after a micro-batch: skipped-batch counting and the loss window."""
        self._tokens += int(flags[2])
        if flags[0] > 0:
            self.state.skipped_steps += 1
            self.state.bad_in_a_row += 1
            self.log(
                f"[train] step {self.state.step}: non-finite loss, batch skipped (#{self.state.bad_in_a_row})"
            )
            if self.state.bad_in_a_row >= self.opts.optim.max_bad_steps:
                raise DivergedError(
                    f"{self.state.bad_in_a_row} non-finite losses in a row at step {self.state.step}: "
                    "the run diverged; lower --learning-rate or check the data"
                )
        else:
            self.state.bad_in_a_row = 0
            if flags[3] > 0:  # weight summed over ranks: padding-only micro-batches carry no loss
                self._window.append(flags[4:7] / flags[3])

    def after_optimizer_step(self) -> None:
        if not self._step_applied:
            self._window, self._tokens, self._since = [], 0, time.perf_counter()
            return
        self.state.step += 1
        if self._window:
            loss, text, mel = (float(v) for v in torch.stack(self._window).mean(0))
            self.losses.append(loss)
            speed = self._tokens / max(time.perf_counter() - self._since, 1e-9)
            if self.metrics is not None:
                values = {"loss": loss, "text_loss": text, "mel_loss": mel, "grad_norm": self._grad_norm}
                values.update(lr=self._lr, tokens_per_s=speed)
                self.metrics.log(values, step=self.state.step)
            self.log(
                f"[train] step {self.state.step} loss {loss:.6f} (text {text:.4f}, mel {mel:.4f}) "
                f"lr {self._lr:.6g}"
            )
        self._window, self._tokens, self._since = [], 0, time.perf_counter()

    # -- epochs ---------------------------------------------------------------------------------
    def stream(self) -> PlanStream:
        acc = self.accelerator
        return PlanStream(
            self.manifest.train_samples, rank=acc.process_index, world=acc.num_processes,
            epoch=self.state.epoch, seed=self.opts.seed, grad_accum=self.opts.optim.grad_accum,
            max_tokens=self.opts.optim.max_tokens_per_batch, prefix_rows=preset(self.opts.preset).prefix_rows,
            per_clip=self.opts.conditioning == "per-clip",
        )  # fmt: skip

    def batches(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(self.stream(), batch_size=None, num_workers=self.opts.num_workers)

    def _epoch_sample_counts(self) -> tuple[int, int]:
        """(samples that contributed, distinct keys) this epoch over all ranks; a key outside the
        training split would be a bug in the plan, so it stops the run."""
        keys = gather_object(self._epoch_keys) if self.accelerator.num_processes > 1 else self._epoch_keys
        stray = set(keys) - self.train_keys
        if stray:
            raise RuntimeError(f"epoch {self.state.epoch} trained on keys off the split: {sorted(stray)[:3]}")
        self._epoch_keys = []
        return len(keys), len(set(keys))

    def end_epoch(self) -> None:
        val = validation_loss(self.accelerator, self.model, self.manifest, self.opts)
        epoch_done = self.state.micro_in_epoch >= self.plan.micro_per_epoch[self.state.epoch]
        samples, unique = self._epoch_sample_counts()
        if epoch_done:
            self.state.epoch += 1
            self.state.micro_in_epoch = 0
        self.state.val_history.append({"epoch": self.state.epoch, "step": self.state.step, "val_loss": val})
        if val is not None and (self.state.best_val is None or val < self.state.best_val):
            self.state.best_val = val
            self.state.best_checkpoint = f"step-{self.state.step:08d}"
        if self.metrics is not None:
            values = {"epoch": self.state.epoch, "epoch_samples": samples, "epoch_unique_samples": unique}
            self.metrics.log(values | ({"val_loss": val} if val is not None else {}), step=self.state.step)
        self.log(
            f"[train] epoch {self.state.epoch} done at step {self.state.step}: val loss {val}, "
            f"{samples} samples ({unique} distinct) of {len(self.train_keys)}"
        )
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
                        if batch.weight > 0:  # applied before the checkpoint
                            self._epoch_keys.extend(batch.keys)
                        continue
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
