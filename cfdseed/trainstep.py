"""One WGAN-GP iteration: ``n_critic`` critic updates, then one generator update (:class:`WganStep`).

:mod:`cfdseed.train` owns the loop around it (set-up, logs, validation, checkpoints, resume); the
losses themselves live in :mod:`cfdseed.losses`. The generator's objective is the adversarial
loss plus every configured term, each added by its weight in one place (:meth:`WganStep.generator`):
a term whose weight is 0 is off (and logged as 0, or as a diagnostic where it is computed anyway).

Random numbers: latents and gradient-penalty coefficients are drawn for the global batch from the
shared stream ``noise`` on every rank and sliced to the rank's shard, so N processes follow the
single-process run; the order of draws is part of exact resume and must not change.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ._collective import run_agreed
from ._torch_dist import TorchDist
from .conditional import Anchor, Unrolled
from .config import TrainConfig
from .losses import (gradient_penalty, innovation_loss, lag_loss, pair_physics_loss, physics_loss, pooled_power,
                     spectrum_error, spectrum_loss, uv_loss)
from .synthesis import ROLLOUT_ANCHOR
from .trainlog import LOSSES

__all__ = ["Targets", "WganStep"]


@dataclass
class Targets:
    """What some generator losses compare with, from the training data (:mod:`cfdseed.traindata`),
    on the training device; None where the loss is off or needs no target."""

    spectrum: torch.Tensor | None = None  # (3, ny, nk): train.spectrum_target = "data"
    innovation: torch.Tensor | None = None  # (3, ny, 1): conditional, train.innovation_weight > 0
    lag: torch.Tensor | None = None  # (unroll, 3, ny): conditional, train.lag_weight > 0


def _add(total: torch.Tensor, weight: float, term: torch.Tensor) -> torch.Tensor:
    """``total + weight * term``; a weight of 0 leaves ``total`` as it is (the term is off)."""
    return total + weight * term if weight > 0 else total


class WganStep:
    """The updates of one iteration, and the state that carries over between iterations.

    Parameters
    ----------
    t_cfg
        The ``[train]`` config.
    dd, device
        The process group and this rank's device.
    gen, critic
        The networks (the critic unwrapped: its gradients are averaged explicitly).
    gen_step
        The generator's training forward: ``gen`` (plane mode) or :class:`Unrolled` ``(gen)``
        (conditional), wrapped in DistributedDataParallel when several processes train.
    opt_g, opt_c, noise
        The optimisers and the shared random stream.
    n_latent
        Latent size per sample.
    targets
        The losses' data targets.
    std
        ``(3, ny)``: the normalisation's standard deviations (anchoring of replayed chains).
    resumed
        The checkpoint's ``training`` dict on resume (the replay chains and their anchor), else None.
    consumed
        Training batches consumed so far (the sampler's position).
    """

    def __init__(self, t_cfg: TrainConfig, dd: TorchDist, device: torch.device, gen: torch.nn.Module,
                 critic: torch.nn.Module, gen_step: torch.nn.Module, opt_g: torch.optim.Optimizer,
                 opt_c: torch.optim.Optimizer, noise: torch.Generator, *, cond: bool, n_latent: int,
                 targets: Targets, std: Any, resumed: Mapping[str, Any] | None, consumed: int) -> None:
        self.t, self.dd, self.device = t_cfg, dd, device
        self.gen, self.critic, self.gen_step = gen, critic, gen_step
        self.opt_g, self.opt_c, self.noise = opt_g, opt_c, noise
        self.cond, self.n_latent, self.targets = cond, n_latent, targets
        self.consumed = consumed
        self.unroll = t_cfg.unroll if cond else 1
        self.unrolled = Unrolled(gen) if cond else None  # the critic step's chains (no DDP, no graph)
        self.local = t_cfg.batch_size // dd.world
        self.lo = dd.rank * self.local
        # conditional, train.replay: the last planes of the generator's own chains (one batch,
        # normalised), continued every G step; empty until the first batch; in the training checkpoint
        self.replay: torch.Tensor | None = None
        self.hold: Anchor | None = None  # ... anchored as a rollout is (unroll steps between calls)
        if cond and t_cfg.replay:
            self.replay = torch.empty(0) if resumed is None else resumed["replay"].to(device)
            self.hold = Anchor(1 - (1 - ROLLOUT_ANCHOR) ** self.unroll,
                               torch.as_tensor(std, dtype=torch.float32)[..., None].to(device))
            if resumed is not None:
                self.hold.mean, self.hold.square = (t.to(device) for t in resumed["replay_anchor"])

    def state(self) -> dict[str, Any]:
        """What the training checkpoint keeps of this step's state (besides ``consumed``)."""
        if self.replay is None:
            return {}
        return {"replay": self.replay.detach().cpu(), "replay_anchor": [self.hold.mean.cpu(), self.hold.square.cpu()]}

    def _latent(self) -> torch.Tensor:
        z = torch.randn(self.t.batch_size, self.n_latent, generator=self.noise)  # (B, latent) global
        return z[self.lo : self.lo + self.local].to(self.device, non_blocking=True)

    def __call__(self, batches: Iterator[torch.Tensor]) -> torch.Tensor:
        """One iteration; returns the detached losses in :data:`cfdseed.trainlog.LOSSES` order (on device)."""
        critic_losses, prev, real = self.critic_updates(batches)
        self.critic.requires_grad_(False)  # G step: no weight gradients for the critic
        gen_losses = self.generator(prev, real)
        self.critic.requires_grad_(True)
        values = {**critic_losses, **gen_losses}
        return torch.stack([values[k].detach() for k in LOSSES]).float()

    def fetch(self, batches: Iterator[torch.Tensor]) -> list[torch.Tensor]:
        """The iteration's ``n_critic`` batches, read up front and agreed between ranks: a read that
        fails on one rank (a truncated file, a lost mount) raises on every rank instead of leaving the
        others in the gradient all-reduce. The reads are pure functions of their keys, so reading
        them before the updates changes no number."""
        return run_agreed(self.dd, lambda: [next(batches) for _ in range(self.t.n_critic)])

    def critic_updates(self, batches: Iterator[torch.Tensor]
                       ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, torch.Tensor]:
        """``n_critic`` critic updates; their last losses and batch (``prev`` None in plane mode)."""
        t, gen, critic, local = self.t, self.gen, self.critic, self.local
        cond = self.cond
        for real in self.fetch(batches):
            real = real.to(self.device, non_blocking=True)  # (b, 3, ny, nz) or pairs (b, 2, 3, ny, nz)
            self.consumed += 1
            # conditional: the condition prev goes first to both nets (and is fixed in the GP)
            prev, real = (real[:, 0], real[:, 1]) if cond else (None, real)  # (b, 3, ny, nz) each
            given = (prev,) if cond else ()
            zs = [self._latent() for _ in range(self.unroll)]  # one latent per step (plane mode: one)
            eps = torch.rand(t.batch_size, generator=self.noise)[self.lo : self.lo + local].to(self.device)  # (b,)
            with torch.no_grad():  # no graph: the critic step does not train G
                if self.unroll == 1:
                    cond_f, fake = prev, gen(*given, zs[0])  # (b, 3, ny, nz)
                else:  # the last pair of a rollout from prev: the critic judges drifted chains too
                    chain = self.unrolled(prev, torch.stack(zs))
                    cond_f, fake = chain[-2], chain[-1]
            doubled = (torch.cat([prev, cond_f]),) if cond else ()  # the conditions of real and fake
            scores = critic(*doubled, torch.cat([real, fake]))  # (2b,)
            d_real, d_fake = scores[:local].mean(), scores[local:].mean()
            if self.unroll == 1:  # the condition is the same for real and fake: fixed in the penalty
                gp = gradient_penalty(lambda x, c=given: critic(*c, x), real, fake, eps)
            else:  # conditions differ: interpolate (condition, next) jointly
                gp = gradient_penalty(lambda x: critic(x[:, :3], x[:, 3:]), torch.cat([prev, real], 1),
                                      torch.cat([cond_f, fake], 1), eps)
            loss_c = d_fake - d_real + t.gp_lambda * gp
            self.opt_c.zero_grad(set_to_none=True)
            loss_c.backward()
            self.dd.average_([p.grad for p in critic.parameters() if p.grad is not None])
            self.opt_c.step()
        return {"loss_c": loss_c, "wasserstein": d_real - d_fake, "gp": gp}, prev, real

    def generator(self, prev: torch.Tensor | None, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """One generator update against the last critic batch; its adversarial loss and every term."""
        t, critic, tg = self.t, self.critic, self.targets
        zero = torch.zeros((), device=self.device)
        replayed = twin = None
        if self.cond:  # unroll steps from the last critic batch's prev, each pair judged and kept physical
            zs = torch.stack([self._latent() for _ in range(self.unroll)])  # (k, b, latent)
            starts, lats = [prev], [zs]  # one generator call (DDP): the batch, twins, replayed planes
            b = prev.shape[0]
            if tg.innovation is not None:  # twins: the first q prev planes again, other latents
                q = max(1, b // 4)
                starts.append(prev[:q])
                lats.append(torch.stack([self._latent()[:q] for _ in range(self.unroll)]))
            if self.replay is not None:  # the generator's own chains, continued (refreshed from real planes)
                if self.replay.numel() == 0:
                    self.replay = prev.detach().clone()
                fresh = torch.randperm(b, generator=self.noise)[: max(1, b // t.replay_refresh)].to(self.device)
                self.replay = self.replay.clone()
                self.replay[fresh] = prev[fresh].detach()
                starts.append(self.replay)
                lats.append(torch.stack([self._latent() for _ in range(self.unroll)]))
            both = (self.gen_step(torch.cat(starts), torch.cat(lats, dim=1)) if len(starts) > 1
                    else self.gen_step(prev, zs))
            chain = both[:, :b]  # (k, b, 3, ny, nz)
            if tg.innovation is not None:
                twin = both[0, b : b + q]
            if self.replay is not None:
                replayed = both[:, both.shape[1] - b :]
                self.replay = self.hold(replayed[-1].detach())
            conds = [prev, *chain[:-1]]
            loss_g = -torch.stack([critic(c, x).mean() for c, x in zip(conds, chain)]).mean()
        else:
            fake = self.gen_step(self._latent())  # (b, 3, ny, nz)
            loss_g = -critic(fake).mean()

        if t.physics_weight == 0:
            phys = zero
        elif self.cond:  # step 1 against the real next plane; later steps' one-point statistics against it
            phys = torch.stack([pair_physics_loss(prev, real, chain[0]),
                                *(physics_loss(real, x) for x in chain[1:])]).mean()
        else:
            phys = physics_loss(real, fake)
        total = _add(loss_g, t.physics_weight, phys)
        inno = zero  # spread of next given prev against the data's innovation variance
        if tg.innovation is not None:
            inno = innovation_loss(chain[0, : twin.shape[0]], twin, tg.innovation)
            total = _add(total, t.innovation_weight, inno)
        rep = zero  # one-point statistics (uv per row too) deep into the chains, vs the real batch
        if replayed is not None:
            rep = torch.stack([physics_loss(real, x) for x in replayed]).mean()
            total = _add(total, t.physics_weight, rep)
        # this step's generated planes (conditional: every unrolled and replayed one); built here, not
        # earlier: the order in which autograd nodes are made sets the order of gradient sums (bits)
        generated = [*chain, *(replayed if replayed is not None else ())] if self.cond else [fake]
        uv = zero  # u-v correlation per row
        if t.uv_weight > 0:
            uv = torch.stack([uv_loss(real, x) for x in generated]).mean()
            total = _add(total, t.uv_weight, uv)
        lag = zero  # every rollout plane's correlation with prev against the data's
        if tg.lag is not None:
            lag = lag_loss(prev, chain, tg.lag)
            total = _add(total, t.lag_weight, lag)
        spec = zero
        if t.spectrum_weight > 0:
            if tg.spectrum is not None:  # every generated plane of this step, pooled, against the data's
                spec = spectrum_error(tg.spectrum, pooled_power(generated))
            else:  # conditional: every step of the chain against the real next planes
                spec = (torch.stack([spectrum_loss(real, x) for x in chain]).mean() if self.cond
                        else spectrum_loss(real, fake))
            total = _add(total, t.spectrum_weight, spec)
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        return {"loss_g": loss_g, "physics": phys, "spectrum": spec, "innovation": inno, "lag": lag,
                "replay": rep, "uv": uv}
