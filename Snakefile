# medprior: the workflow. One include per stage; every rule calls the `medprior` command.
#   snakemake -n                       show what would run (the DAG)
#   snakemake --cores 2                run the embedded demo (configs/default.yaml)
#   snakemake --profile workflows/profiles/slurm   run on a SLURM cluster
#   snakemake --report report.html     after a run: landing page (config, seeds), versions, every table and figure
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "configs/default.yaml"


validate(config, "workflows/schemas/config.schema.yaml")

DATA = config["workdir_data"]
RESULTS = config["workdir_results"]

report: "workflows/report/workflow.rst"


include: "workflows/rules/data.smk"
include: "workflows/rules/priors.smk"
include: "workflows/rules/recon.smk"
include: "workflows/rules/synthesis.smk"
include: "workflows/rules/dehaze.smk"
include: "workflows/rules/segment.smk"
include: "workflows/rules/run_info.smk"


rule all:
    input:
        rules.data_all.input,
        rules.recon_all.input,
        rules.priors_all.input,
        rules.synthesis_all.input,
        rules.dehaze_all.input,
        rules.segment_all.input,
        rules.run_info.output,
    default_target: True
