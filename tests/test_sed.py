"""The SED network's basis, decoding and photometry (model/sed.py, train/sed.py), checked against
independent references: speclite's own AB magnitudes of high-resolution spectra, and the mock's
own band fluxes of its galaxies."""
import numpy as np
import pytest

from galaxy_spark.filters import standard_curve
from galaxy_spark.model import sed as S
from galaxy_spark.survey import load_survey
from galaxy_spark.train import sed as TS

SETTINGS = TS.sed_settings({"output": {"units": 8}})


@pytest.fixture(scope="module")
def family():
    sv = load_survey()
    wave = TS.rest_wave(SETTINGS)
    types, spectra = TS.template_family(sv, wave)
    return sv, wave, types, spectra


@pytest.fixture(scope="module")
def basis(family):
    sv, wave, types, spectra = family
    lg = TS.template_log_spectra(np.linspace(types[0], types[-1], 200), types, spectra, wave)
    mean, comps, explained = TS.fit_components(lg, 8)
    assert explained > 0.999
    return TS.build_basis({**SETTINGS, "synthetic_filters": ["sdss2010-g", "sdss2010-r", "wise2010-W1"]},
                          sv, mean, comps, 0.5, "catalogue")


def test_decoding_round_trips_and_persists(family, basis):
    sv, wave, types, spectra = family
    lg = TS.template_log_spectra(types, types, spectra, wave)
    # the family's own members: the interpolation passes through them
    np.testing.assert_allclose(lg, S.normalised_log(spectra, wave), atol=1e-12)
    c = basis.project(lg)
    np.testing.assert_allclose(basis.log_spectra(c), lg, atol=0.01)     # 8 components: within 2.3%
    assert (basis.spectra(c) > 0).all()
    # network output x scale = coefficient, and the whole basis survives the ensemble's JSON + arrays
    np.testing.assert_allclose(basis.coefficients(c / basis.scale), c)
    doc, arrays = S.to_parts(basis)
    back = S.from_parts(doc, arrays)
    z, m = np.linspace(0.1, 2.0, len(c)), np.full(len(c), 21.0)
    a, b = basis.derived(c, z, m), back.derived(c, z, m)
    assert list(a) == list(basis.columns()) == list(back.columns())
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # a wrong coefficient changes the spectrum: the round trip is not vacuous
    c2 = c.copy()
    c2[:, 0] += 5.0
    assert np.abs(basis.log_spectra(c2) - lg).max() > 0.1


def _speclite_mag(name, wave, flam):
    import speclite.filters

    f = speclite.filters.load_filter(name)
    keep = (wave > f.wavelength[0] - 100) & (wave < f.wavelength[-1] + 100)
    import astropy.units as u

    return float(f.get_ab_magnitude(flam[keep] * u.erg / u.s / u.cm ** 2 / u.Angstrom, wave[keep] * u.Angstrom))


def test_synthetic_photometry_of_a_known_template_matches_speclite(basis):
    """A kcorrect template at z = 0.3 and 1.0 (high resolution, given to speclite directly) against
    this module's 300-point grid: rest-frame U − V, observed g and r, and the absolute V magnitude
    from the k-correction, all to 0.03 mag."""
    from astropy.cosmology import Planck18

    from galaxy_spark.fitting.templates import binned_templates, load_templates

    wave_hr, tflux, _ = load_templates()
    for t in (0, 2):
        s_hr = tflux[t]
        s_grid = binned_templates(basis.wave)[t][None, :]
        for z in (0.3, 1.0):
            dl = (10.0 / Planck18.luminosity_distance(z).to("pc").value) ** 2
            obs_w, obs_f = wave_hr * (1 + z), s_hr / (1 + z) * dl        # at distance d_L, rest flux S at 10 pc
            m_g, m_r = _speclite_mag("sdss2010-g", obs_w, obs_f), _speclite_mag("sdss2010-r", obs_w, obs_f)
            # the detection-band magnitude the object would be measured with (survey curve, high resolution)
            from galaxy_spark.filters import ab_magnitudes, load_responses

            sv = load_survey()
            det = ab_magnitudes(obs_w, obs_f, {sv.detection_band: load_responses(sv)[sv.detection_band]})[0]
            got = basis.photometry(s_grid, np.array([z]), np.array([det]))
            assert got["mag_sdss2010_g"][0] == pytest.approx(m_g, abs=0.03), (t, z)
            assert got["mag_sdss2010_r"][0] == pytest.approx(m_r, abs=0.03), (t, z)
            uv = _speclite_mag("bessell-U", wave_hr, s_hr) - _speclite_mag("bessell-V", wave_hr, s_hr)
            assert got["rest_u_minus_v"][0] == pytest.approx(uv, abs=0.03), (t, z)
            assert got["abs_bessell_V"][0] == pytest.approx(_speclite_mag("bessell-V", wave_hr, s_hr), abs=0.03), (t, z)


def test_a_filter_the_grid_does_not_cover_is_nan_not_biased(basis):
    """WISE W1 (3.4 µm) lies beyond the 25,000 Å rest-frame grid at z = 0.05 but inside it at z = 1."""
    c = np.zeros((2, basis.n_components))
    got = basis.derived(c, np.array([0.05, 1.0]), np.array([20.0, 20.0]))
    assert np.isnan(got["mag_wise2010_W1"][0]) and np.isfinite(got["mag_wise2010_W1"][1])


def test_pz_spread_is_zero_for_a_sharp_pz_and_grows_with_width(basis):
    c = np.zeros((3, basis.n_components))
    zb = np.linspace(0.0125, 4.9875, 200)
    sharp = np.exp(-0.5 * ((zb - 0.8) / 0.005) ** 2)
    wide = np.exp(-0.5 * ((zb - 0.8) / 0.2) ** 2)
    two = sharp + np.exp(-0.5 * ((zb - 2.5) / 0.005) ** 2)
    pz = np.stack([sharp, wide, two])
    pz /= pz.sum(axis=1, keepdims=True)
    err = basis.derived(c, np.full(3, 0.8), np.full(3, 21.0), pz, zb)["mag_sdss2010_g_err"]
    assert err[0] < 0.05 < err[1] < err[2]


def test_truth_sed_reproduces_the_mocks_own_band_fluxes(family):
    """The truth columns' SED (template weights + A_V, as the mock writes them) through this
    module's photometry gives the colours the mock simulated its photometry from."""
    from galaxy_spark.evaluate.sed import band_photometry_basis
    from galaxy_spark.mock.core import context
    from galaxy_spark.fitting.templates import rest_spectra
    from galaxy_spark.mock.photometry import maggies_to_mag

    sv, wave, _, _ = family
    ctx = context(sv)
    g = ctx.gal.draw(np.random.default_rng(1), 400)
    keep = g.z < 3.0
    weights = g.coeffs[keep] / g.coeffs[keep].sum(axis=1, keepdims=True)
    s = rest_spectra(weights, g.av[keep], wave)
    dummy = S.SEDBasis(wave, np.zeros(wave.size), np.zeros((1, wave.size)), 1.0, *(_nodes(sv, wave)),
                       ("bessell-V",), np.zeros((wave.size, 1)))
    pb, bands, _ = band_photometry_basis(dummy, sv)
    mags = maggies_to_mag(g.maggies[keep])              # columns in ctx.bands order
    got = pb.photometry(s, g.z[keep], mags[:, ctx.det])
    assert len(bands) >= 20
    for b in bands:
        k = ctx.bands.index(b)
        d = got[f"mag_{S.filter_column(b)}"] - mags[:, k]
        ok = np.isfinite(d) & (mags[:, k] < 30)
        # no bias; the scatter is the grid's resolution (600 points: emission lines smeared over ~25 Å)
        assert abs(np.median(d[ok])) < 0.01, (b, np.median(d[ok]))
        assert np.median(np.abs(d[ok])) < 0.05, (b, np.median(np.abs(d[ok])))


def _nodes(sv, wave):
    from galaxy_spark.filters import load_response, observed_weights

    z = np.round(np.arange(0.0, 6.0 + 1e-9, 0.025), 6)
    det = load_response(next(b for b in sv.bands if b.name == sv.detection_band))
    return z, np.zeros(z.size), observed_weights(wave, det.wave_aa, det.throughput, z)   # no distances needed


def test_unknown_filter_and_bad_settings_are_clear_errors(basis):
    from galaxy_spark.errors import InputError

    with pytest.raises(ValueError, match="unknown filter 'lsst2023-q'"):
        S.with_filters(basis, ["lsst2023-q"])
    with pytest.raises(InputError, match="basis.components .* must equal output.units"):
        TS.sed_settings({"output": {"units": 6}, "basis": {"components": 8}})
    assert standard_curve("sdss2010-r")[1].max() == pytest.approx(1.0)


def test_column_names():
    assert S.filter_column("sdss2010-r") == "sdss2010_r"
    assert S.filter_column("/tmp/curves/my.band.dat") == "my_band"
    assert S.is_sed_column("sed_c3") and S.is_sed_column("mag_lsst2023_i_err") and S.is_sed_column("rest_u_minus_v")
    assert not S.is_sed_column("sed_coeff1_true") and not S.is_sed_column("z_phot")


def test_sed_labels_need_no_mock_section(tmp_path):
    """The SED network's labelling templates come from fitting/templates, not from the simulator: a
    survey file without `mock:` (and without `spectroscopy:`) builds them."""
    import shutil

    import yaml

    from galaxy_spark.survey import load_survey, survey_file
    from galaxy_spark.train.sed import template_family

    raw = yaml.safe_load(survey_file("jplus").read_text())
    raw.pop("mock")
    raw.pop("spectroscopy", None)
    shutil.copytree(survey_file("jplus").parent / "curves", tmp_path / "curves")
    (tmp_path / "no_mock.yaml").write_text(yaml.safe_dump(raw))
    survey = load_survey(str(tmp_path / "no_mock.yaml"))
    assert survey.mock is None
    types, family = template_family(survey, np.geomspace(1000, 25000, 100))
    assert family.shape == (11, 100) and np.all(np.diff(types) >= 0) and np.isfinite(family).all()
