"""PyTorch (CPU, eager) peer: resnet18 inference.

Workloads (ms per forward pass, float32, 3x224x224 input, random weights):
  resnet18_infer_b1    batch 1
  resnet18_infer_b32   batch 32 (batch 8 with --quick)
torchvision is not installed in the peer venv, so the network is written out here with
torchvision's resnet18 layout (BasicBlock, [2, 2, 2, 2], 1000 classes); it runs in eval
mode under torch.inference_mode(). Prints one JSON line per figure.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness as h  # noqa: E402


def build():
    import torch.nn as nn

    class Basic(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.relu(self.b1(self.c1(x)))
            y = self.b2(self.c2(y))
            skip = x if self.down is None else self.down(x)
            return self.relu(y + skip)

    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
              nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Basic(cin, cout, stride), Basic(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000)]
    return nn.Sequential(*layers)


def main():
    import torch

    hx = h.Harness("torch")
    torch.manual_seed(7)
    net = build().eval()
    big = 8 if hx.quick else 32
    for workload, batch in (("resnet18_infer_b1", 1), ("resnet18_infer_b32", big)):
        if not hx.wants(workload):
            continue
        x = torch.rand(batch, 3, 224, 224)

        def call():
            with torch.inference_mode():
                net(x)

        hx.report_ms(workload, hx.time_per_call(call), batch=batch)


if __name__ == "__main__":
    main()
