"""Built-in reference models (see docs/models.md for equations and sources)."""

from ._french_flag import (
    flag_boundaries as flag_boundaries,
)
from ._french_flag import (
    french_flag as french_flag,
)
from ._library import (
    goodwin as goodwin,
)
from ._library import (
    huang_ferrell_mapk as huang_ferrell_mapk,
)
from ._library import (
    kholodenko_mapk as kholodenko_mapk,
)
from ._library import (
    lotka_volterra as lotka_volterra,
)
from ._library import (
    michaelis_menten as michaelis_menten,
)
from ._library import (
    michaelis_menten_mass_action as michaelis_menten_mass_action,
)
from ._library import (
    repressilator as repressilator,
)
from ._library import (
    toggle_switch as toggle_switch,
)
