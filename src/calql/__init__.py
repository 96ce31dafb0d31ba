"""calql: Cal-QL (calibrated offline RL pre-training + online fine-tuning) in JAX.

Nakamoto et al., "Cal-QL: Calibrated Offline RL Pre-Training for Efficient Online
Fine-Tuning", NeurIPS 2023. CQL is the same code with the calibration switched off.
"""

__version__ = "0.1.0"
