"""Routers in the order they see updates: /cancel first, features, fallbacks last.

An update walks the routers in this order until one takes it, and every router it
passes costs it a hop, so what users send most comes early: the signal's buttons, then
/devices and the device screens' buttons. Only handlers that cannot take another
feature's update go early (a command, callback data of their own); what a user types in a
flow's state stays after every command's router, so a command sent mid-flow still
reaches its handler (tests/test_routing.py checks both).
"""

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
        # The most frequent: approvals, /devices and the device screens' buttons.
        signals.create_router(),
        devices.create_router(),
        device_settings.create_router(),
        device_trading.create_router(),
        # Feature routers go here, before the fallbacks.
        admin_refunds.create_router(),
        admin_payouts.create_router(),
        admin_dead_letters.create_router(),
        checkout.create_router(),
        referrals.create_router(),
        stats.create_router(),
        payouts.create_router(),
        signals_admin.create_router(),
        settings.create_router(),
        protections.create_router(),
        # Typed input of the device flows: after every command.
        devices.create_input_router(),
        device_settings.create_input_router(),
        fallback.create_router(),
    ]
