"""`foundation limiter …`: client commands for the limiter service.

Mounted by services.runtime.cli (CLIENT_APPS). The limiter's verbs (`check`, `status`, …) are added here as
`@app.command()` functions by the limiter engineer.
"""

from __future__ import annotations

import typer

app = typer.Typer(help="Client commands for the limiter service.", no_args_is_help=True)
