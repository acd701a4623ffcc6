"""Train `fashion-classifier-32` (ganprint.evaluation.fashion_classifier) and save it as a model folder.

    python recipes/fashion-classifier-32/train.py TRAIN_ZIP TEST_ZIP OUTPUT_DIR [--epochs 5] [--seed 0]

TRAIN_ZIP / TEST_ZIP: `ganprint dataset create-fashion-mnist ... --resolution 32 [--split test]`.
The test accuracy is printed and recorded in the model's config.json.
"""

import argparse

import torch

from ganprint.evaluation.fashion_classifier import load_labelled, train_classifier

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("train_zip")
parser.add_argument("test_zip")
parser.add_argument("output")
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

train, test = load_labelled(args.train_zip), load_labelled(args.test_zip)
net, test_accuracy = train_classifier(train, test, epochs=args.epochs, seed=args.seed)
print(f"test accuracy {test_accuracy:.4f} on {len(test[1])} Fashion-MNIST test images")
net.save_pretrained(args.output, extra={"training": {"epochs": args.epochs, "seed": args.seed, "torch": torch.__version__,
                                                     "test_accuracy": round(test_accuracy, 4),
                                                     "data": "Fashion-MNIST train (60,000), 28 -> 32 px"}})
