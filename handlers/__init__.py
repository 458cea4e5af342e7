"""Routers in the order they see updates: /cancel first, features, fallbacks last."""

from __future__ import annotations

from aiogram import Router

from handlers import (
    admin_dead_letters,
    admin_money,
    checkout,
    common,
    device_settings,
    devices,
    errors,
    fallback,
    payouts,
    referrals,
    settings,
    signals,
    signals_admin,
    start,
    stats,
)


def _routers() -> list[Router]:
    return [
        errors.router,
        common.router,
        start.router,
        # Feature routers go here, before the fallbacks.
        admin_money.router,
        admin_dead_letters.router,
        checkout.router,
        referrals.router,
        stats.router,
        payouts.router,
        signals_admin.router,
        signals.router,
        settings.router,
        devices.router,
        device_settings.router,
        fallback.router,
    ]


def get_routers() -> list[Router]:
    """The routers, detached from any earlier dispatcher.

    Routers are module singletons (aiogram's idiom), and aiogram lets a router have one
    parent; tests and benchmarks build a fresh dispatcher each time, so it takes them over.
    """
    routers = _routers()
    for router in routers:
        parent = router.parent_router
        if parent is not None:
            parent.sub_routers.remove(router)
            router._parent_router = None
    return routers
