"""The Function App: registers the blueprints. Nothing else lives here."""

import azure.durable_functions as df

from activities.lifecycle import bp as activities
from activities.prompts import bp as prompt_activities
from activities.runs import bp as run_index
from orchestrators.lifecycle import bp as lifecycle
from orchestrators.prompt import bp as prompt
from orchestrators.release import bp as release
from orchestrators.retrain import bp as retrain
from orchestrators.rollback import bp as rollback
from triggers.api import bp as api
from triggers.events import bp as events
from triggers.monitor import bp as monitor
from triggers.retention import bp as retention

app = df.DFApp()
for blueprint in (api, events, monitor, retention, lifecycle, retrain, release, rollback, prompt, activities,
                  prompt_activities, run_index):
    app.register_functions(blueprint)
