// Generated from stepaudio_core/edits.py by `python -m stepaudio_core.edits --write-js web/js/edit_registry.js`. Do not edit.
export const NO_OPTION = "none";
export const REGISTRY = {
  "edit_types": {
    "emotion": {
      "options": [
        "happy",
        "angry",
        "sad",
        "humour",
        "confusion",
        "disgusted",
        "empathy",
        "embarrass",
        "fear",
        "surprised",
        "excited",
        "depressed",
        "coldness",
        "admiration",
        "remove"
      ],
      "needs_audio_text": true,
      "needs_new_text": false
    },
    "style": {
      "options": [
        "serious",
        "arrogant",
        "child",
        "older",
        "girl",
        "pure",
        "sister",
        "sweet",
        "ethereal",
        "whisper",
        "gentle",
        "recite",
        "generous",
        "act_coy",
        "warm",
        "shy",
        "comfort",
        "authority",
        "chat",
        "radio",
        "soulful",
        "story",
        "vivid",
        "program",
        "news",
        "advertising",
        "roar",
        "murmur",
        "shout",
        "deeply",
        "loudly",
        "remove",
        "exaggerated"
      ],
      "needs_audio_text": true,
      "needs_new_text": false
    },
    "vad": {
      "options": [],
      "needs_audio_text": false,
      "needs_new_text": false
    },
    "denoise": {
      "options": [],
      "needs_audio_text": false,
      "needs_new_text": false
    },
    "paralinguistic": {
      "options": [],
      "needs_audio_text": true,
      "needs_new_text": true
    },
    "speed": {
      "options": [
        "faster",
        "slower",
        "more faster",
        "more slower"
      ],
      "needs_audio_text": true,
      "needs_new_text": false
    }
  },
  "paralinguistic_tags": [
    "[Breathing]",
    "[Laughter]",
    "[Surprise-oh]",
    "[Confirmation-en]",
    "[Uhm]",
    "[Surprise-ah]",
    "[Surprise-wa]",
    "[Sigh]",
    "[Question-ei]",
    "[Dissatisfaction-hnn]"
  ],
  "language_tags": [
    "Sichuanese",
    "Cantonese",
    "Japanese",
    "Korean"
  ]
};
