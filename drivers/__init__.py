"""Hardware adapters (PC/SC, nfcpy, camera QR, keyboard wedge, ESC/POS printer, voice) and their
simulated devices. They implement the ports of terminal/ and never import Qt."""
