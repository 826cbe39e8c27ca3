"""Watching one order to its verdict, in pieces that each do one job.

- :mod:`~energy_async.watch.events`: immutable observations, one per look;
- :mod:`~energy_async.watch.state`: a frozen state with ``apply(event)``;
- :mod:`~energy_async.watch.attribution` and :mod:`~energy_async.watch.judge`: pure functions
  of the state (energy with its basis and reasons; then the verdict by ``verdict.py``'s table);
- :mod:`~energy_async.watch.witnesses`: the provider's and the chain's I/O;
- :mod:`~energy_async.watch.referee`: the task group that applies events and asks the judge.

:class:`energy_async.Coordinator` is the public face of all this.
"""
