"""The "How it works" tab: the equations the engine implements and the papers they come from."""

HOW_IT_WORKS = r"""
### In plain words
A diffusion model learns to turn noise into pictures like the ones it was trained on. When one training picture
appears many times, or its caption is very specific, the model can learn that picture by heart and, given its
caption, paint it back almost pixel for pixel. That is **memorization**: a privacy and copyright problem when the
training picture is someone's photo or artwork. The built-in model, EmojiMem, was trained on emoji, and 100 of them
appear 32 times each: their captions make it copy.

**How to read the Generate screen.** Pick an example under *Memorized*: the left image is what the model paints with
plain guidance, the right image is the same start with the chosen mitigation. Under each image a copy detector
(trained to recognise an emoji even recoloured, shifted or blurred, and never used by the mitigations) says
**COPY** or **not a copy**, with its score against its threshold τ, and shows the training image it is closest to.
The right-most picture is the prompt's own training image. The plots follow the run step by step: on the left the
strength of the prompt's pull (‖ε_c − ε_u‖), on the right the signal AMG watches (σ_t) against its threshold λ_t, with
the steps where the mitigation acted shaded. *Never trained* examples show what the model does with a caption it
has never seen; *Not an emoji name* shows that it knows only emoji names.

### Classifier-free guidance and memorization
Each step the model predicts the noise twice, with the prompt ($\epsilon_c$) and without it ($\epsilon_u$), and samples
with $\hat\epsilon = \epsilon_u + s_0(\epsilon_c - \epsilon_u)$. A memorized prompt pulls hard towards one training
image, so $\lVert\epsilon_c - \epsilon_u\rVert$ is large from the first steps (Wen et al.'s detection signal), and the
predicted clean image $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon)/\sqrt{\bar\alpha_t}$ is already close to
that image. The demo plots both, step by step, for the baseline and the mitigated run, which start from the same noise.

### Similarity to the training set
$\sigma_t$ compares $\hat x_0$ with its nearest training image, at one of two levels (the "Similarity" control).
**Object level** (AMG Eq. 9, the default): the cosine of copy-detection embeddings, from a small CNN trained on the
emoji to ignore colour, hue swaps, small shifts, blur and noise (EmojiMem's stand-in for SSCD); its copy threshold is
calibrated like SSCD's (the cosine that tells edited copies from distinct emoji at 90% precision, or the best
precision the descriptor reaches). **Pixel level** (AMG Eq. 8):
$\sigma = 1 - \mathrm{nL2}/2$, where nL2 is the distance to the nearest image divided by $\alpha$ times the mean
distance to the 50 nearest ($\alpha = 0.5$), with a threshold that only 5% of never-trained emoji reach. Pixel-level
guidance tends to recolour a copy rather than remove it, which is why the AMG paper used SSCD on LAION.

### Anti-Memorization Guidance (AMG)
Only while $\sigma_t$ exceeds $\lambda_t$ (Eq. 10), AMG adds up to three terms to the CFG noise:
* **G_spe, despecification** (Eq. 13–14): lowers the guidance scale by $s_1 = \min(c_1\sigma_t, s_0 - 1)$ — the prompt
  is too specific.
* **G_dup, deduplication** (Eq. 15–16): guides away from the caption most duplicated among the nearest training images,
  with $s_2 = \min(c_2\sigma_t, s_0 - s_1 - 1)$.
* **G_sim, dissimilarity** (Eq. 17): $c_3\sqrt{1-\bar\alpha_t}\,\nabla_{x_t}\sigma_t$ added to the noise estimate,
  which moves $\hat x_0$ down the gradient of $\sigma_t$, away from the nearest training image itself. On EmojiMem
  duplicated captions *are* their own prompt, so G_spe and G_dup can only lower the scale to 1, where the model still
  copies; only G_sim can change the image, and on these small models it often changes texture more than the object
  (the measured tables are in the Models tab).

### Transition point and opposite guidance
Early steps decide the layout; that is where a memorized prompt's attraction basin catches the sample. Applying no
guidance until a transition and full CFG afterwards escapes it: **STP** switches at a fixed $t$, **DTP** at the first
local minimum of $\lVert\epsilon_c - \epsilon_u\rVert$ (Alg. 1), **OG** uses the opposite scale $-s$ before the
switch (Eq. 5) to leave the basin faster.

### Ambient training
The EmojiMem-Ambient twin never saw a clean training image above noise level $t_n$: for $t > t_n$ it learns from one
fixed noisy copy $x_{t_n}$ (Alg. 1, Eq. 6), which makes exact copies harder to learn at high noise.

### Papers
* Chen, Liu, Xu — [*Towards Memorization-Free Diffusion Models*](https://arxiv.org/abs/2404.00922) (CVPR 2024): AMG.
* Jain, Kobayashi, Shibuya, Takida, Memon, Togelius, Mitsufuji — [*Classifier-Free Guidance inside the Attraction
  Basin May Cause Memorization*](https://arxiv.org/abs/2411.16738) (CVPR 2025): transition point, opposite guidance.
* Shah, Kalavasis, Klivans, Daras — [*Does Generation Require Memorization? Creative Diffusion Models using Ambient
  Diffusion*](https://arxiv.org/search/?query=Does+Generation+Require+Memorization+Ambient+Diffusion&searchtype=title)
  (2025): the Ambient objective.
"""
