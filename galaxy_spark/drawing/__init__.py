"""Drawing: figures and HTML building blocks with no pipeline knowledge (base layer only), usable
from any layer (training logs its curves, the studies draw their comparisons)."""
