"""Built-in reference models (see docs/models.md for equations and sources)."""

from ._library import (
    goodwin as goodwin,
    kholodenko_mapk as kholodenko_mapk,
    lotka_volterra as lotka_volterra,
    michaelis_menten as michaelis_menten,
    michaelis_menten_mass_action as michaelis_menten_mass_action,
    repressilator as repressilator,
    toggle_switch as toggle_switch,
)
