"""Result codes of a simulation: diffrax's, plus those of jaxcell's event loop."""

from __future__ import annotations

import diffrax


class RESULTS(diffrax.RESULTS):  # pyright: ignore[reportGeneralTypeIssues]
    """Why a simulation stopped: :class:`diffrax.RESULTS` extended with the outcomes of
    jaxcell's event loop. ``Trajectory.result`` holds one; ``RESULTS.promote`` turns a
    diffrax code into one."""

    max_segments_reached = (
        "The event loop ran out of segments (event firings, discontinuities and save "
        "points): pass a larger max_segments to simulate()."
    )
    event_queue_full = (
        "Too many delayed event executions were pending at once; the queue holds "
        "max(8, 4 x number of events)."
    )
    history_full = (
        "The history kept for delays is full (16 x 4096 accepted steps); simulate a "
        "shorter time span or loosen the tolerances."
    )
    event_tie = (
        "Two simultaneous events have equal, explicit priorities: SBML asks for a random "
        "order, and jaxcell executes events deterministically (give them different "
        "priorities)."
    )
    negative_amount = (
        "A species that only reactions change became negative beyond the tolerances."
    )
    max_jumps_reached = (
        "The stochastic simulation reached its budget of steps (max_jumps of SSA or "
        "TauLeaping): pass a larger max_jumps, or use TauLeaping or CLE for a model "
        "with many molecules."
    )
    invalid_propensity = (
        "A propensity was NaN or negative: check the rate laws (a propensity is a rate "
        "in events per unit time, never negative)."
    )
    event_cascade = (
        "Events kept triggering each other at one instant (more than 64 executions)."
    )
