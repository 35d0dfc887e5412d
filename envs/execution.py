"""``exchange/Execution-v0``: work a parent order into the market within a deadline."""

from __future__ import annotations

from typing import Any

import numpy as np

from envs import actions
from envs.trading import LEARNER, TradingEnv
from exchange.commands import MassCancel, NewOrder
from exchange.enums import OrderType, TimeInForce
from exchange.sim import Context

class ExecutionEnv(TradingEnv):
    """Buy (or sell) ``target_qty`` lots before the horizon, as cheaply as the book allows.

    ## Description

    The market of ``TradingEnv`` (same presets, background traders, warm-up and step
    interval). At reset the agent receives a parent order: ``target_qty`` lots on
    ``exec_side`` (1 buy, -1 sell) to complete within ``horizon_steps`` steps. The arrival
    price is the venue's mark at reset. Each step the agent may send one child limit
    order on the parent's side; every child goes through the matching engine. On the last
    step of the horizon the environment takes over: it cancels the agent's working orders
    and sends a market IOC for whatever is left (it pays the prices it finds; on ``cme``
    the market order is protected as on Globex).

    ## Action Space

    ``MultiDiscrete([2, 2 * max_offset + 1, len(qty_buckets), 2])`` (the last component
    only with ``cancel_all``): 0 wait / 1 send a child order; its price offset from the
    touch and size bucket exactly as in ``TradingEnv``; cancel all working children first.
    A child is clipped to the quantity still unassigned (target minus filled minus working),
    so the agent can never overfill; nothing is sent when that is zero. With
    ``action_type="box"``, a ``Box(-1, 1)`` binned onto these components as in
    ``TradingEnv``.

    ## Observation Space

    As ``TradingEnv`` (``Box`` or ``Dict``), except that the inventory feature (index
    ``4 * depth + 4``, ``agent[0]`` in the ``Dict``) is the fraction of the parent order
    still to fill, in ``[0, 1]``.

    ## Rewards

    Implementation shortfall against the arrival price, step by step: the change of the
    agent's equity marked at the arrival price (``Account.equity({symbol: arrival})``, so
    each fill adds ``side * (arrival - price) * qty`` minus fees), in ticks x lots, divided
    by ``reward_scale``. After the final sweep, each lot still unfilled costs
    ``unfilled_penalty`` ticks. The episode's rewards sum to minus the shortfall.

    ## Episode End

    Terminates when the parent order is completely filled. Otherwise truncated by
    ``TimeLimit`` after ``max_episode_steps`` (200 at registration, 20 s of simulated time;
    pass ``horizon_steps`` with it as in ``TradingEnv``).

    ## Arguments

    ``gymnasium.make("exchange/Execution-v0", target_qty=..., exec_side=...,
    unfilled_penalty=..., **overrides)``; every ``TradingConfig`` field applies. The
    venue's ``max_position`` must be at least ``target_qty``.

    ## Version History

    * v0: Initial version.
    """

    def __init__(self, config: Any = None, render_mode: str | None = None, **overrides: Any) -> None:
        super().__init__(config, render_mode, **overrides)
        cfg = self.config
        if cfg.max_position < cfg.target_qty:
            raise ValueError(
                f"max_position ({cfg.max_position}) must be at least target_qty ({cfg.target_qty}): "
                "the venue would refuse the orders the parent needs"
            )

    def _action_nvec(self) -> list[int]:
        cfg = self.config
        return [2, 2 * cfg.max_offset + 1, len(cfg.qty_buckets)] + ([2] if cfg.cancel_all else [])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        self.arrival = None
        obs, info = super().reset(seed=seed, options=options)
        self.arrival = self.mid
        self.arrival_equity = self._arrival_equity()
        return self._observation(0.0, 0), self._info(0, 0)

    def remaining(self) -> int:
        """Lots of the parent order not yet filled."""
        return self.config.target_qty - self.config.exec_side * self.account.position(self.config.symbol)

    def _act(self, ctx: Context, action: Any) -> None:
        cfg, orders = self.config, self.learner.orders
        side = cfg.exec_side
        if self.steps + 1 == self.horizon:  # the final sweep replaces the agent's action
            if orders.orders:
                ctx.submit(cfg.symbol, MassCancel(LEARNER))
            if self.remaining() > 0:
                oid = ctx.next_order_id()
                ctx.submit(
                    cfg.symbol,
                    NewOrder(oid, LEARNER, side, self.remaining(), type=OrderType.MARKET, tif=TimeInForce.IOC, smp_id=LEARNER),
                )
            return
        idx = self._indices(action)
        if cfg.cancel_all and idx[3] and orders.orders:
            ctx.submit(cfg.symbol, MassCancel(LEARNER))
            unassigned = self.remaining()
        else:
            unassigned = self.remaining() - orders.open_qty(side)
        qty = min(cfg.qty_buckets[idx[2]], unassigned)
        if idx[0] and qty > 0:
            actions.order_at_offset(
                ctx, cfg.symbol, LEARNER, orders, side, idx[1] - cfg.max_offset, qty,
                tick=self.tick, fallback=self._fallback_price(),
            )

    def _arrival_equity(self) -> float:
        return self.account.equity({self.config.symbol: self.arrival})

    def _reward(self) -> tuple[float, bool]:
        cfg = self.config
        equity = self._arrival_equity()
        money = (equity - self.arrival_equity) / self.tick
        self.arrival_equity = equity
        self.equity = self.account.equity(self.exchange.marks())
        remaining = self.remaining()
        if self.steps == self.horizon and remaining > 0:
            money -= cfg.unfilled_penalty * remaining
        return money / cfg.reward_scale, remaining == 0

    def _observation(self, mid_return: float, flow: int) -> Any:
        obs = super()._observation(mid_return, flow)
        if self.arrival is None:  # during TradingEnv.reset; replaced at the end of ours
            return obs
        value = self.remaining() / self.config.target_qty
        if isinstance(obs, dict):
            obs["agent"][0] = value
        else:
            obs[4 * self.config.depth + 4] = value
        return obs

    def _info(self, messages: int, commands: int) -> dict[str, Any]:
        info = super()._info(messages, commands)
        if self.arrival is not None:
            info["remaining"] = self.remaining()
            info["arrival_price"] = self.arrival
        return info
