"""Task metrics: BSDS ODS/OIS and pixel F1 for edges, PSNR/SSIM for super-resolution."""

from kd_keras.metrics.edges import PixelF1, boundary_scores, edge_counts
from kd_keras.metrics.sr import PSNR, psnr, rgb_to_y, ssim

__all__ = ["PSNR", "PixelF1", "boundary_scores", "edge_counts", "psnr", "rgb_to_y", "ssim"]
