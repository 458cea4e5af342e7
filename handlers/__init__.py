"""Routers in the order they see updates: /cancel first, features, fallbacks last."""

from __future__ import annotations

from aiogram import Router

from handlers import (
    admin_dead_letters,
    admin_payouts,
    admin_refunds,
    checkout,
    common,
    device_settings,
    device_trading,
    devices,
    errors,
    fallback,
    payouts,
    protections,
    referrals,
    settings,
    signals,
    signals_admin,
    start,
    stats,
)


def create_routers() -> list[Router]:
    """Fresh routers, one per feature, for one dispatcher (a router has one parent)."""
    return [
        errors.create_router(),
        common.create_router(),
        start.create_router(),
        # Feature routers go here, before the fallbacks.
        admin_refunds.create_router(),
        admin_payouts.create_router(),
        admin_dead_letters.create_router(),
        checkout.create_router(),
        referrals.create_router(),
        stats.create_router(),
        payouts.create_router(),
        signals_admin.create_router(),
        signals.create_router(),
        settings.create_router(),
        devices.create_router(),
        device_settings.create_router(),
        protections.create_router(),
        device_trading.create_router(),
        fallback.create_router(),
    ]
