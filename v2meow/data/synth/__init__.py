"""Synthetic paired data: music in, music videos out (``v2meow synth-data MUSIC_DIR -o VIDEO_DIR``).

No real music videos are available offline, so the embedded model, the tests and the demos learn and
check the video-music correspondence on videos RENDERED from music. Each track is analysed (beats and
tempo, onsets and onset strength, loudness, brightness, section boundaries, an overall character and each
section's energy and brightness), and a
small animated scene is rendered whose motion, flashes, cuts and colours follow the analysis:

- objects pulse, hop, bounce or speed up on beats, with an amplitude from the beat's onset strength;
- strong onsets flash the picture; loudness sets the exposure and the speed of motion (with the tempo);
- section boundaries cut to a new layout with the new section's palette (sometimes a new world); some phrase
  starts (every 8 or 16 beats) cut to a new layout too;
- the palette comes from the character of the section on screen (the track's mode and tempo, the section's
  energy and brightness): bright, fast, loud, major music gets warm saturated colours, dark, slow, quiet,
  minor music cool dim ones, so colours change when a section brings other instruments or playing.

Five visual worlds exist (:data:`WORLDS`): ``starfield`` (particles flying at the camera), ``shapes``
(pulsing, rotating, hopping geometric shapes), ``plasma`` (colour waves), ``bounce`` (balls that hit the
floor on the beats) and ``city`` (a parallax skyline with windows lit on onsets). The world is drawn at
random with probabilities that depend on the character, so a world's style is learnable but not
determined by the music; within a world, counts, shapes, positions, phases and colours are random.
Nothing draws the waveform or spectrum. Visual noise unrelated to the music (film grain, a slow camera
drift, a light blinking at its own rate, rare cuts at random times, random per-object motion) makes a
model learn the correspondence rather than copy a signal.

Every video (H.264 yuv420p with the track's audio as AAC, so one file gives both) gets a sidecar JSON
with the same stem: the analysis (tempo, beat times = the video's "visual beats", onsets, sections,
character), the chosen worlds and cuts, the seed, and the source file with its licence if known.
Outputs are written atomically (temporary name, then rename); existing outputs are skipped, so a run
can be resumed; ``workers > 1`` renders files in parallel processes.

Rendering is numpy-vectorised and streamed frame by frame into the encoder (a video is never held in
memory); at 256×144 and 24 fps it runs many times faster than real time on one core.

The package, in the order data flows: :mod:`.analysis` (the music), :mod:`.controls` (per-frame signals),
:mod:`.palette` (colours), :mod:`.worlds` (the five scenes), :mod:`.render` (cuts, frames, one MP4 and its
sidecar; the encoding is :func:`v2meow.io.mux.write_video`) and :mod:`.folders` (a music folder in, a video
folder out). Every public name is importable from ``v2meow.data.synth``.
"""

from v2meow.data.synth.analysis import ANALYSIS_SR, TrackAnalysis, analyse_audio, estimate_tempo, section_boundaries
from v2meow.data.synth.controls import Controls, Frame
from v2meow.data.synth.folders import list_audio, source_info, synth_data, track_seed
from v2meow.data.synth.palette import Palette, character_palette
from v2meow.data.synth.render import FORMAT, SYNTH_VERSION, Cut, Renderer, plan_cuts, render_video, sidecar_path
from v2meow.data.synth.worlds import WORLDS, Bounce, City, Plasma, Shapes, Starfield, World, world_probabilities
from v2meow.io.audio import AUDIO_EXTENSIONS

__all__ = [
    "ANALYSIS_SR", "AUDIO_EXTENSIONS", "FORMAT", "SYNTH_VERSION", "WORLDS",
    "TrackAnalysis", "analyse_audio", "estimate_tempo", "section_boundaries",
    "Controls", "Frame", "Palette", "character_palette",
    "World", "Starfield", "Shapes", "Plasma", "Bounce", "City", "world_probabilities",
    "Cut", "Renderer", "plan_cuts", "render_video", "sidecar_path",
    "list_audio", "source_info", "synth_data", "track_seed",
]
