"""CPU-scale CIFAR-10: D-ReLU dense head vs input convolution vs plain ReLU.

The D-ReLU paper's two placements (a dense D-ReLU layer before the output,
Figure 10; a convolution with D-ReLU after the input, Figure 13) against the
plain network, on two architectures: a shallow CNN and a retrofitted
`keras.applications` backbone (MobileNetV2, random weights). Each model is
evaluated on the lossless CIFAR-10 test images of
`../shared/data/cifar10-subset.npz` at eps 0.01 (the paper's) and 8/255
under the adaptive suite (APGD-CE, APGD-T, Square, BPDA, transfer; worst
case per image), and over a range of eps under APGD-CE and BPDA(APGD-CE):
the eps-generalisation curve of the paper's Figures 25-27.

    python examples/cifar10_retrofit.py --help
    python examples/cifar10_retrofit.py --quick --out /tmp/cifar
    python examples/cifar10_retrofit.py          # the committed run

Every reduction from the paper (training images, epochs, initial cap,
evaluated images, attack budgets) is written in the header of the table.
"""

import argparse
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_drelu import DReLU  # noqa: E402
from keras_drelu import max_values  # noqa: E402
from keras_drelu.evaluation import eps_sweep  # noqa: E402
from keras_drelu.evaluation import evaluate_robustness  # noqa: E402
from keras_drelu.training import train  # noqa: E402
from retrofit.data import npz  # noqa: E402
from retrofit.placements import build_retrofit_model  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "cifar10-subset.npz"
DEFAULT_OUT = REPO / "docs" / "results" / "cifar10_retrofit"
ARCHS = ("cnn", "mobilenetv2")
PLACEMENTS = {"plain": "ReLU (plain)", "dense": "D-ReLU dense head",
              "conv": "D-ReLU input conv"}
QUICK = dict(
    train_size=300, epochs=1, eval_images=12, apgd_steps=2,
    target_classes=2, square_queries=5, sweep_eps_255=[2.0, 16.0],
    archs=["cnn"], checks=False,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    parser.add_argument("--archs", nargs="+", choices=ARCHS,
                        default=list(ARCHS))
    parser.add_argument("--train-size", type=int, default=6000,
                        help="training images (10%% held out for validation)")
    parser.add_argument("--epochs", type=int, default=8,
                        help="maximum epochs (early stopping on val_loss)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--units", type=int, default=128,
                        help="width of the dense head")
    parser.add_argument("--lam", type=float, default=0.1,
                        help="D-ReLU cap penalty")
    parser.add_argument("--initial-max-value", type=float, default=1.0,
                        help="initial cap (paper: 100; see the table header)")
    parser.add_argument("--eval-images", type=int, default=300,
                        help="first N lossless test images")
    parser.add_argument("--apgd-steps", type=int, default=20)
    parser.add_argument("--target-classes", type=int, default=3)
    parser.add_argument("--square-queries", type=int, default=300)
    parser.add_argument("--sweep-eps-255", nargs="+", type=float,
                        default=[1.0, 2.0, 4.0, 8.0, 16.0, 32.0],
                        help="radii of the eps curve, in units of 1/255")
    parser.add_argument("--no-checks", dest="checks", action="store_false",
                        help="skip the zero-gradient and large-eps checks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="tiny smoke run to check the script; not for "
                        "results")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    for name in ("train_size", "epochs", "batch_size", "units",
                 "eval_images", "apgd_steps", "target_classes",
                 "square_queries"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1: "
                         f"{getattr(args, name)}")
    if args.lam <= 0 or args.initial_max_value <= 0:
        parser.error("--lam and --initial-max-value must be > 0")
    if any(eps <= 0 for eps in args.sweep_eps_255):
        parser.error(f"--sweep-eps-255 must be > 0: {args.sweep_eps_255}")
    return args


def shallow_cnn(placement, args):
    """The paper's shallow CNN with a plain head or a D-ReLU placement."""
    caps = dict(initial_max_value=args.initial_max_value,
                max_value_regularizer=args.lam)
    layers = [keras.Input((32, 32, 3))]
    if placement == "conv":
        layers += [keras.layers.Conv2D(3, 3, padding="same"),
                   DReLU(name="input_cap", **caps)]
    for filters in (32, 64, 128):
        layers += [keras.layers.Conv2D(filters, 3, padding="same",
                                       activation="relu"),
                   keras.layers.MaxPooling2D()]
    layers += [keras.layers.Flatten(), keras.layers.Dense(args.units),
               DReLU(name="head_cap", **caps) if placement == "dense"
               else keras.layers.ReLU(),
               keras.layers.Dense(10, name="logits")]
    return keras.Sequential(layers, name=f"cnn_{placement}")


def build(arch, placement, args):
    if arch == "cnn":
        return shallow_cnn(placement, args)
    where, activation = {"plain": ("head", "relu"), "dense": ("head", "drelu"),
                         "conv": ("input", "drelu")}[placement]
    caps = {} if activation == "relu" else dict(
        lam=args.lam, initial_max_value=args.initial_max_value)
    return build_retrofit_model(
        "MobileNetV2", (32, 32, 3), 10, placement=where,
        activation=activation, units=args.units, weights=None, **caps,
    )


def evaluate(model, x, y, eps, args):
    overrides = {
        "APGD-CE": {"steps": args.apgd_steps},
        "APGD-T": {"steps": args.apgd_steps,
                   "n_target_classes": args.target_classes},
        "Square": {"n_queries": args.square_queries},
    }
    return evaluate_robustness(
        model, x, y, eps=eps, suite="adaptive", overrides=overrides,
        checks_enabled=args.checks, seed=args.seed, verbose=False,
    )


def run(args):
    splits = npz(args.data, batch_size=args.batch_size, seed=args.seed,
                 limit=args.train_size)
    with np.load(args.data) as data:
        # The lossless test images, in file order, as the data README asks.
        x = data["x_test"][: args.eval_images].astype("float32") / 255.0
        y = data["y_test"][: args.eval_images].astype("int32").reshape(-1)
    sweep_eps = [e / 255.0 for e in args.sweep_eps_255]
    results = []
    for arch in args.archs:
        for placement in PLACEMENTS:
            start = time.perf_counter()
            history = train(
                build(arch, placement, args), splits.train,
                splits.validation,
                recipe="standard" if placement == "plain" else "drelu",
                epochs=args.epochs, seed=args.seed, verbose=0,
            )
            model = history.model
            reports = {name: evaluate(model, x, y, eps, args)
                       for name, eps in (("0.01", 0.01), ("8/255", 8 / 255))}
            curves = {
                attack: eps_sweep(
                    model, x, y, sweep_eps, attack=attack, seed=args.seed,
                    overrides={"APGD-CE": {"steps": args.apgd_steps}},
                ).accuracy
                for attack in ("APGD-CE", "BPDA(APGD-CE)")
            }
            caps = {name: float(np.mean(value))
                    for name, value in max_values(model).items()}
            seconds = time.perf_counter() - start
            print(f"{arch} {placement}: {len(history.epochs)} epochs, "
                  f"{seconds:.0f} s", flush=True)
            results.append({
                "arch": arch, "placement": placement,
                "epochs_trained": len(history.epochs),
                "mean_caps": caps,
                "clean": reports["0.01"].clean_accuracy,
                "apgd_ce": {n: r.accuracy["APGD-CE"]
                            for n, r in reports.items()},
                "worst_case": {n: r.worst_case_accuracy
                               for n, r in reports.items()},
                "flags": sorted({f.code for r in reports.values()
                                 for f in r.flags}),
                "curves": curves,
                "seconds": round(seconds, 1),
                "reports": {n: r.to_dict() for n, r in reports.items()},
            })
    return results


def header(args):
    return (
        f"Shallow CNN (3 conv + dense {args.units}) and MobileNetV2 "
        f"(keras.applications, random weights, retrofitted) on {args.train_size}"
        f" of the 50000 CIFAR-10 training images (10% held out; all but the "
        f"first 2000 are JPEG copies), at most {args.epochs} epochs with "
        f"early stopping (paper: up to 2000); D-ReLU lam={args.lam:g}, "
        f"initial cap {args.initial_max_value:g} (paper: 100; Adam moves a "
        f"cap by about its learning rate per step, so caps from 100 never "
        f"come down in a CPU budget). Evaluated on the first "
        f"{args.eval_images} of the 10000 test images (lossless; paper: "
        f"10000). Adaptive suite, cascade, worst case per image: APGD-CE and "
        f"APGD-T with {args.apgd_steps} steps (AutoAttack: 100), APGD-T on "
        f"{args.target_classes} target classes (AutoAttack: 9), Square with "
        f"{args.square_queries} queries (AutoAttack: 5000), BPDA(APGD-CE), "
        f"BPDA(APGD-T), Transfer(APGD-CE). Seed {args.seed}, one run each."
    )


def markdown(results, args):
    lines = [
        "| Architecture | Placement | Mean cap | Clean | APGD-CE 0.01 | "
        "**Worst case 0.01** | APGD-CE 8/255 | **Worst case 8/255** | Flags |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        caps = ", ".join(f"{v:.3g}" for v in r["mean_caps"].values()) or "-"
        lines.append(
            f"| {r['arch']} | {PLACEMENTS[r['placement']]} | {caps} | "
            f"{100 * r['clean']:.1f} | {100 * r['apgd_ce']['0.01']:.1f} | "
            f"**{100 * r['worst_case']['0.01']:.1f}** | "
            f"{100 * r['apgd_ce']['8/255']:.1f} | "
            f"**{100 * r['worst_case']['8/255']:.1f}** | "
            f"{', '.join(r['flags']) or '-'} |"
        )
    lines += ["", "Eps curve (accuracy in percent; eps in units of 1/255):",
              "", "| Architecture | Placement | Attack | "
              + " | ".join(f"{e:g}" for e in args.sweep_eps_255) + " |",
              "|---|---|---|" + "---|" * len(args.sweep_eps_255)]
    for r in results:
        for attack, accuracy in r["curves"].items():
            lines.append(
                f"| {r['arch']} | {PLACEMENTS[r['placement']]} | {attack} | "
                + " | ".join(f"{100 * a:.1f}" for a in accuracy) + " |"
            )
    return "\n".join(lines)


def reading(results):
    """A reading generated from the numbers, so it cannot drift."""
    lines = []
    for r in results:
        if r["placement"] == "plain":
            continue
        plain = next(p for p in results if p["arch"] == r["arch"]
                     and p["placement"] == "plain")
        lines.append(
            f"- {r['arch']}, {PLACEMENTS[r['placement']]}: clean "
            f"{100 * (r['clean'] - plain['clean']):+.1f} points vs plain; at "
            f"eps 0.01 APGD-CE {100 * r['apgd_ce']['0.01']:.1f}% and worst "
            f"case {100 * r['worst_case']['0.01']:.1f}% (plain: "
            f"{100 * plain['worst_case']['0.01']:.1f}%); at 8/255 worst case "
            f"{100 * r['worst_case']['8/255']:.1f}% (plain: "
            f"{100 * plain['worst_case']['8/255']:.1f}%)."
        )
    return "\n".join(lines)


def plot_curves(results, args, path):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5 * len(args.archs), 4))
    axes = np.atleast_1d(figure.subplots(1, len(args.archs)))
    for ax, arch in zip(axes, args.archs):
        for r in results:
            if r["arch"] != arch:
                continue
            for attack, style in (("APGD-CE", "-"), ("BPDA(APGD-CE)", "--")):
                ax.plot(args.sweep_eps_255,
                        100 * np.asarray(r["curves"][attack]), style,
                        marker="o",
                        label=f"{PLACEMENTS[r['placement']]}, {attack}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("eps (x 1/255)")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(arch)
        ax.legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv=None):
    args = parse_args(argv)
    if not args.data.exists():
        sys.exit(f"Data file not found: {args.data}")
    start = time.perf_counter()
    results = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    table = markdown(results, args)
    command = "examples/cifar10_retrofit.py" + (" --quick" if args.quick else "")
    (args.out / "table.md").write_text("\n".join([
        "# D-ReLU placements on CIFAR-10 at CPU scale (D-ReLU paper, "
        "sections 6.2 and 9)",
        "",
        f"Written by `{command}` (numbers never edited).",
        "",
        f"**Settings (reduced):** {header(args)}",
        "",
        "Accuracy in percent. **Worst case** is per image over every L-inf "
        "attack of the adaptive suite.",
        "",
        table,
        "",
        "## Reading (generated from the numbers above)",
        "",
        reading(results),
        "",
        "![eps curves](eps_curves.png)",
        "",
    ]))
    plot_curves(results, args, args.out / "eps_curves.png")
    (args.out / "results.json").write_text(json.dumps({
        "settings": {k: (str(v) if isinstance(v, pathlib.Path) else v)
                     for k, v in vars(args).items()},
        "description": header(args),
        "results": results,
        "total_seconds": round(time.perf_counter() - start, 1),
    }, indent=2, default=float) + "\n")
    print(table)
    print(f"Results written to {args.out} (table.md, results.json, "
          f"eps_curves.png)")


if __name__ == "__main__":
    main()
