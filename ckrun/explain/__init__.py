"""Why a model answered as it did: Grad-CAM maps per head and AU, and AU facial-region shares.

`gradcam` computes the maps, `regions` draws each AU's facial region from CK+ landmarks on
the face the model sees, `explainer` puts both together per image. Writing them to a folder or
into a run is `ckrun.explanations` (a job); drawing them is `ckrun.figures.images`.
"""
