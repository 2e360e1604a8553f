"""Reads the SRs and heatmap captures that tests/report_objects.rs writes, as a viewer-side
toolkit would: highdicom parses each SR as a TID 1500 measurement report and finds the finding,
its probability, its region and the algorithm identification; pydicom decodes each capture.

The objects and a manifest.json of what each should contain are in $ARGUS_REPORT_DIR.
"""

import json
import os
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

REPORT_DIR = Path(os.environ.get("ARGUS_REPORT_DIR", ""))
COMPREHENSIVE = "1.2.840.10008.5.1.4.1.1.88.33"
COMPREHENSIVE_3D = "1.2.840.10008.5.1.4.1.1.88.34"
PROBABILITY = hd.sr.CodedConcept("122157", "DCM", "Probability")
PRESENT = hd.sr.CodedConcept("52101004", "SCT", "Present")
ABSENT = hd.sr.CodedConcept("272519000", "SCT", "Absent")


def cases():
    manifest = REPORT_DIR / "manifest.json"
    if not manifest.is_file():
        pytest.exit(f"no manifest at {manifest}: run `cargo test --test report_objects`", 2)
    return json.loads(manifest.read_text())


CASES = cases()


@pytest.fixture(params=CASES, ids=[c["name"] for c in CASES])
def case(request):
    return request.param


def read_report(case):
    dataset = pydicom.dcmread(REPORT_DIR / case["sr"])
    return dataset, hd.sr.MeasurementReport.from_sequence([dataset])


def texts(item, name):
    return [i.value for i in hd.sr.utils.find_content_items(item, name=name, recursive=True)]


def test_header_says_unverified_ai_results_in_the_source_study(case):
    dataset, _ = read_report(case)

    sop_class = COMPREHENSIVE_3D if case["three_d"] else COMPREHENSIVE
    assert dataset.SOPClassUID == sop_class
    assert dataset.VerificationFlag == "UNVERIFIED"
    assert dataset.CompletionFlag == "COMPLETE"
    assert dataset.Modality == "SR"
    assert dataset.Manufacturer == "Argus"
    assert dataset.SeriesNumber == 9001
    assert "AI results" in dataset.SeriesDescription
    assert dataset.StudyInstanceUID == case["study_uid"]
    assert str(dataset.PatientName) == case["patient_name"]
    assert dataset.PatientID == case["patient_id"]
    if "charset" in case:
        assert dataset.SpecificCharacterSet == case["charset"]


def test_evidence_lists_every_source(case):
    dataset, _ = read_report(case)

    evidence = dataset.CurrentRequestedProcedureEvidenceSequence[0]
    listed = [
        sop.ReferencedSOPInstanceUID
        for series in evidence.ReferencedSeriesSequence
        for sop in series.ReferencedSOPSequence
    ]
    assert evidence.StudyInstanceUID == case["study_uid"]
    assert sorted(listed) == sorted(case["sources"])


def test_highdicom_reads_the_sop_instance(case):
    dataset = pydicom.dcmread(REPORT_DIR / case["sr"])

    sr_class = hd.sr.Comprehensive3DSR if case["three_d"] else hd.sr.ComprehensiveSR
    document = sr_class.from_dataset(dataset)

    assert document.SOPInstanceUID == dataset.SOPInstanceUID


def test_report_names_the_device_and_says_ai_generated(case):
    _, report = read_report(case)

    devices = report.get_observer_contexts(observer_type=codes.DCM.Device)
    comments = texts(report[0], hd.sr.CodedConcept("121106", "DCM", "Comment"))

    assert devices and devices[0].observer_identifying_attributes.name == "Argus"
    assert any("AI-generated" in c and "not been verified" in c for c in comments)
    assert any(case["model"]["intended_use"] in c for c in comments)
    if not any(f["present"] for f in case["findings"]):
        top = case["findings"][0]
        summary = [c for c in comments if c.startswith("No finding reached")]
        assert summary and f"{top['probability']:.2f}".rstrip("0") in summary[0]


def groups_of(report):
    return report.get_planar_roi_measurement_groups() + report.get_image_measurement_groups()


def test_each_finding_has_a_group_with_probability_and_evaluation(case):
    _, report = read_report(case)

    groups = {g.finding_type.value: g for g in groups_of(report)}
    assert len(groups) == len(case["findings"])
    for finding in case["findings"]:
        group = groups[finding["value"]]
        code = hd.sr.CodedConcept(finding["value"], finding["scheme"], "ignored")
        probability = group.get_measurements(name=PROBABILITY)
        evaluation = group.get_qualitative_evaluations(name=code)

        assert group.tracking_identifier and group.tracking_uid
        assert len(probability) == 1
        assert probability[0].value == pytest.approx(finding["probability"], abs=1e-4)
        assert probability[0].unit.value == "{ratio}"
        assert evaluation[0].value == (PRESENT if finding["present"] else ABSENT)


def test_algorithm_identification_names_the_model(case):
    _, report = read_report(case)

    for group in groups_of(report):
        names = texts(group[0], codes.DCM.AlgorithmName)
        versions = texts(group[0], codes.DCM.AlgorithmVersion)
        parameters = texts(group[0], codes.DCM.AlgorithmParameters)

        assert names == [case["model"]["name"]]
        assert versions == [case["model"]["version"]]
        assert parameters


def test_region_is_drawn_where_the_finding_is(case):
    _, report = read_report(case)

    planar = report.get_planar_roi_measurement_groups()
    if case["region"] is None:
        assert planar == []
        return

    assert len(planar) == sum(f["present"] for f in case["findings"])
    roi = planar[0].roi
    if case["region"] == "POINT3D":
        assert isinstance(roi, hd.sr.ImageRegion3D)
        assert roi.graphic_type == hd.sr.GraphicTypeValues3D.POINT
        assert roi.value.shape == (1, 3)
        return

    assert roi.graphic_type.value == case["region"]
    points = roi.value
    if case["region"] == "POLYLINE":
        assert points.shape == (5, 2)
        assert np.array_equal(points[0], points[-1])
    source = roi.ContentSequence[0].ReferencedSOPSequence[0]
    assert source.ReferencedSOPInstanceUID == case["location_sop"]
    assert source.get("ReferencedFrameNumber") == case.get("frame")


def test_amendment_refers_to_the_predecessor(case):
    dataset, _ = read_report(case)

    if "predecessor" not in case:
        assert "PredecessorDocumentsSequence" not in dataset
        return
    study = dataset.PredecessorDocumentsSequence[0]
    sop = study.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert sop.ReferencedSOPInstanceUID == case["predecessor"]


def test_heatmap_capture_decodes_at_the_source_size(case):
    capture = pydicom.dcmread(REPORT_DIR / case["sc"])

    frames, rows, columns = case["sc_shape"]
    pixels = capture.pixel_array
    expected = (rows, columns, 3) if frames == 1 else (frames, rows, columns, 3)
    assert pixels.shape == expected
    assert capture.SamplesPerPixel == 3
    assert capture.PhotometricInterpretation == "RGB"
    assert capture.BurnedInAnnotation == "YES"
    assert "AI heatmap" in capture.SeriesDescription
    assert case["model"]["name"] in capture.SeriesDescription
    assert capture.StudyInstanceUID == case["study_uid"]
    assert str(capture.PatientName) == case["patient_name"]
    assert capture.SourceImageSequence
