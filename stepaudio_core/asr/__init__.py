"""Speech recognition: Whisper checkpoints in transformers format turn a recording into a Transcript.

transformers is imported only inside ``recognizer.SpeechRecognizer``; ``folder`` (names, checks, download)
imports neither it nor torch, so the command line can check a Whisper folder before anything loads.
"""
