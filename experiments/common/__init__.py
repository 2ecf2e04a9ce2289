"""What the paper reproductions in `experiments/` share.

- `arguments`: the command-line arguments every experiment draws from
  (one table), `--quick` presets and the paper's settings as data.
- `data`: MNIST and the CIFAR-10 subset from `../shared/data`.
- `networks`: the papers' small networks and retrofit models, built
  through the library's tables of activations and placements.
- `evaluation`: training, attack budgets from the arguments, and the
  evaluation call.
- `results`: tables, the "reduced from the paper" line, readings checked
  against their tables, `table.md`, `results.json` and figures.

An experiment is a module `experiments/<name>.py` holding its docstring
(the first paragraph is its `--help` description), `DATASET` (a key of
`data.DATASETS`, or `None`), `DEFAULTS` (arguments of
`arguments.ARGUMENTS` -> its defaults), `QUICK` (the `--quick` preset, or
`None`), `OPTIONS` (its own arguments: flag -> `add_argument` keywords),
`run(args)` and `write(outcome, args)` (-> the paths written). It ends in
`results.main(sys.modules[__name__])`.

The scripts import this package as `common` (their folder is on `sys.path`
when run as `python experiments/<name>.py`).
"""
