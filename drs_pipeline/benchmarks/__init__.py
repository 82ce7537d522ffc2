"""The pieces of ``drs-pipeline bench`` (entry point: ``drs_pipeline.bench``).

* ``world``: the simulated world each scenario syncs, and its two moments;
* ``simulator_process``: that world served over loopback HTTP by a separate process;
* ``fetch_only``: the bound, a client that only downloads and decodes the pages;
* ``measure``: one measurement in a fresh process, with its peak RSS;
* ``scenarios``: the five scenarios, each giving rows of the table;
* ``merge``, ``scheduled``: what scenarios 4 and 5 run in their measurement processes;
* ``table``: the rows and how they are printed.

A benchmark, not a test: nothing here asserts a timing.
"""
