"""The app's configurator, as quickstart writes it: the package, no root."""

import qsapp
from tg import FullStackApplicationConfigurator

base_config = FullStackApplicationConfigurator()
base_config.update_blueprint(
    {
        "package": qsapp,
        "renderers": ["kajiki"],
        "default_renderer": "kajiki",
        "use_dotted_templatenames": True,
    }
)
