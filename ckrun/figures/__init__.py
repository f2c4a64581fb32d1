"""Every figure ckrun draws, in one place, with one look (`style`).

One module per kind of figure; each function takes plain arrays, tables or mappings and a
path, writes one PNG and returns the path, so training, `ckrun data describe` and the report
share the same drawings:

- `style`: DPI, colours, markers, and `new_figure` / `save` (pyplot-free Agg figures).
- `confusion`: the emotion confusion matrix (training artifacts and report alike).
- `curves`: values over epochs: a run's learning curves, the top runs overlaid.
- `dataset`: the dataset description's figures (class counts, AUs, image sizes).
- `runs`: comparisons across runs: objective per run, hyperparameter effects, importances.
- `scores`: one model's scores broken down per class, per AU and per demographic group.

A new figure goes where its input lives: another view of one model's predictions (e.g.
precision-recall curves, reliability diagrams) in `scores`; something over epochs or frames
in `curves`; images with something drawn on them (e.g. face grids, saliency overlays) in a
new `images` module. matplotlib is imported only inside the drawing functions, so importing
this package (or `ckrun --help`) never loads it.
"""
