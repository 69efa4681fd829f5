#!/usr/bin/env bash
# Every command of the CurveVel-A priors of the posterior-inversion evaluation, in order, each
# skipped when its output is complete: re-running the script after an interruption resumes (the
# trainers continue from their resume points, make-dataset from its last written row). The
# latent prior (autoencoder, latent diffusion, two decoder-only fine-tunes of the velocity branch,
# its decoder error) is the one the README's CurveVel-A rows used; the velocity-space prior is
# what `--sharpen --sharpen-checkpoint runs/velocity_prior_curvevel_a` needs. About 6 h on 2
# CPU cores in all (the velocity-space prior ~4.3 h of it); minutes on a GPU (set device = "cuda"
# in the configs). Run from the repository root:  bash research/curvevel_a_priors.sh
set -euo pipefail
done_if() { [ -e "$1" ] && echo "skip: $1 exists"; }

done_if data/curvevel_a.h5.complete || {
    ubdiff-phys make-dataset --family curvevel-a --n-velocity 4000 --n-paired 400 --n-test 64 \
        --boundary pml --device cpu data/curvevel_a.h5
    touch data/curvevel_a.h5.complete
}
done_if runs/ae_curvevel_a/final.pt || ubdiff-phys train-ae configs/ae_curvevel_a.toml
done_if runs/diffusion_curvevel_a/final.pt || ubdiff-phys train-diffusion configs/diffusion_curvevel_a.toml
done_if runs/ae_curvevel_a_velocity/final.pt || ubdiff-phys train-ae configs/ae_curvevel_a_velocity.toml
done_if runs/diffusion_curvevel_a_velocity || python -c "from ubdiff_phys.pipelines import rebind_diffusion; \
rebind_diffusion('runs/diffusion_curvevel_a', 'runs/ae_curvevel_a/final.pt', \
'runs/ae_curvevel_a_velocity/final.pt', 'runs/diffusion_curvevel_a_velocity', branch='velocity')"
done_if runs/ae_curvevel_a_velocity_sharp/final.pt || \
    ubdiff-phys train-ae configs/ae_curvevel_a_velocity_sharp.toml
done_if runs/diffusion_curvevel_a_sharp || python -c "from ubdiff_phys.pipelines import rebind_diffusion; \
rebind_diffusion('runs/diffusion_curvevel_a_velocity', 'runs/ae_curvevel_a_velocity/final.pt', \
'runs/ae_curvevel_a_velocity_sharp/final.pt', 'runs/diffusion_curvevel_a_sharp', branch='velocity')"
done_if runs/diffusion_curvevel_a_sharp/denoiser_error.json || \
    ubdiff-phys prior-error runs/diffusion_curvevel_a_sharp --store data/curvevel_a.h5 --n-maps 32
done_if runs/velocity_diffusion_curvevel_a/final.pt || \
    ubdiff-phys train-velocity-diffusion configs/velocity_diffusion_curvevel_a.toml
# the EMA weights of steps 15,000-20,000 averaged, as the shipped FlatVel-A velocity prior's are,
# with its denoiser error (for the sharpening's likelihood)
V=runs/velocity_prior_curvevel_a
R=runs/velocity_diffusion_curvevel_a
done_if $V/velocity_diffusion.pt || python -c "from ubdiff_phys.pipelines.shipped_velocity import \
package_velocity_checkpoint as p; p('$R/final.pt', '$V', \
average=['$R/step%d.pt' % n for n in range(15000, 20000, 1000)])"
done_if $V/velocity_diffusion.denoiser_error.json || \
    ubdiff-phys prior-error $V/velocity_diffusion.pt --store data/curvevel_a.h5 --n-maps 32
echo "all CurveVel-A priors complete"
